"""Where a linked grapin or app task goes on this machine: where that app keeps its data here."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import EcosysError
from ..grapins import AppRegistry, GrapinRegistry
from ..hookspecs import hookimpl
from ..resolve import resolve_grapin
from ..grapin_layout import grapin_layout
from ..types import Placeholder, TaskKind, TaskLayout, TaskOffer


class CatalogueLinkPaths:
    """Answers ``choose_link_path`` for grapin and app tasks from this machine's catalogues.

    Folder tasks get no answer here, so the user is asked (CHOOSELINKPATH).
    """

    def __init__(
        self,
        grapins: Callable[[], GrapinRegistry],
        apps: Callable[[], AppRegistry],
        placeholders: Callable[[], dict[str, Placeholder]],
    ) -> None:
        self._grapins, self._apps, self._placeholders = grapins, apps, placeholders

    @hookimpl
    def task_layout(self, offer: TaskOffer) -> TaskLayout | None:
        if offer.kind is not TaskKind.GRAPIN or offer.source is None:
            return None
        try:
            layout = grapin_layout(self._grapins().get(offer.source).item, self._placeholders())
        except EcosysError:
            return None  # unknown or absent here: choose_link_path, then the person, decide
        return layout if layout.parts or layout.patterns or layout.lock_files or layout.process_names else None

    @hookimpl
    def choose_link_path(self, offer: TaskOffer) -> Path | None:
        if offer.source is None:
            return None
        try:
            if offer.kind is TaskKind.GRAPIN:
                return resolve_grapin(self._grapins().get(offer.source).item, self._placeholders())
            if offer.kind is TaskKind.APP:
                return self._apps().get(offer.source).item.data_folder
        except EcosysError:
            return None  # app unknown or unresolvable here: let the user choose
        return None
