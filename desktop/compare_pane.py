"""The selected group's images side by side, each with what tells copies apart, and a mark checkbox.

A group of similar shots (other captures, not copies) is shown the same way without the checkbox: nothing in
it can be marked. Layout only: the pane reports what the person did (``toggle``, ``menu``,
``open_viewer``, ``show_difference``) and the main window decides what that means.
"""

from __future__ import annotations

import html
import os

from PySide6.QtCore import QPoint, Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent, QMouseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from core.results import Group, ImageRecord
from desktop.formatting import human_bytes, percent, taken_or_modified
from desktop.thumbnails import ThumbnailCache

CARD_IMAGE = 256  # the largest picture a card shows (the thumbnail size: never upscaled)
MIN_IMAGE = 160  # below this the cards scroll sideways instead of shrinking


CARD_STYLE = """
#MemberCard { border: 1px solid palette(mid); border-radius: 4px; }
#MemberCard[marked="true"] { border: 2px solid palette(highlight); }
#MemberCard:focus { border: 3px dashed palette(highlight); }
"""


BETTER_TIPS = {
    "Resolution": "The most pixels in this group",
    "Size": "The largest file in this group",
    "Date": "The earliest date in this group (the camera's own date counts first)",
}


def better_facts(records: list[ImageRecord]) -> list[frozenset[str]]:
    """For each record, the facts in which it is the best of its group: the most pixels (not counting a file
    enlarged past the size its camera recorded: ``ImageRecord.upscaled``), the largest file, the earliest date
    (an EXIF capture date before a file date). A fact every member shares is nobody's."""

    def when(r: ImageRecord) -> tuple[int, str]:
        label, text = taken_or_modified(r)  # compared as shown: copies made in one minute tie
        return (0 if label == "Taken" else 1, text)

    keys = {
        "Resolution": lambda r: (r.upscaled, -r.pixels),
        "Size": lambda r: -r.size,
        "Date": when,
    }
    out: list[set[str]] = [set() for _ in records]
    for fact, key in keys.items():
        values = [key(r) for r in records]
        if len(set(values)) > 1:
            top = min(values)
            for k, v in enumerate(values):
                if v == top:
                    out[k].add(fact)
    return [frozenset(o) for o in out]


def _names(paths: tuple[str, ...] | list[str]) -> str:
    names = [html.escape(os.path.basename(p)) for p in paths[:3]] + (["…"] if len(paths) > 3 else [])
    return ", ".join(names)


def unsure_text(
    others: tuple[str, ...], twins: tuple[str, ...] = (), members: frozenset[str] | None = None
) -> str:
    """A card's warning when the check was not sure the photo is one with ``others`` (paths); ``twins``: the
    members with this file's very bytes, which auto-select may remove it beside (``core.selection``);
    ``members``: the group's paths (others outside it are said to be: a stricter slider left them out)."""
    if twins:
        rule = (
            f"It has the same bytes as {_names(twins)}: Auto-select may remove all but one of them. "
            "If they are different shots, right-click: <i>Another shot than …</i>"
        )
    else:
        rule = (
            "Auto-select leaves it. If they are different shots, right-click: <i>Another shot than …</i>; "
            "if not, tick what to remove."
        )
    inside = sum(p in members for p in others) if members is not None else len(others)
    outside = (
        "" if inside == len(others) else " (not all in this group)" if inside else " (not in this group)"
    )
    doubt = (
        f"⚠ <b>Maybe not a copy</b> of {_names(others)}{outside}: it could be another exposure or a burst "
        "frame."
    )
    return f"{doubt} {rule}"


class MemberCard(QFrame):
    """One image of a group: picture, mark box, facts."""

    toggle = Signal(str)
    menu = Signal(str, QPoint)
    open_viewer = Signal(str)
    step = Signal(str, int)  # Left/Right: move the focus to the previous/next card
    show_difference = Signal(str)  # what changed between this copy and the best one

    def __init__(
        self,
        rec: ImageRecord,
        similarity: float,
        best: bool,
        reference: bool,
        thumbs: ThumbnailCache,
        parent: QWidget | None = None,
        *,
        markable: bool = True,
        better: frozenset[str] = frozenset(),
        raw_pair: bool = False,
        unsure_with: tuple[str, ...] = (),
        twins: tuple[str, ...] = (),
        members: frozenset[str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.rec = rec
        self.thumbs = thumbs
        self.markable = markable
        self.setObjectName("MemberCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self.side = CARD_IMAGE
        self.image = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.set_side(CARD_IMAGE)
        self.image.setText("…")
        self.check = QCheckBox("Remove this copy")
        self.check.setFocusPolicy(
            Qt.FocusPolicy.NoFocus
        )  # Space on the card toggles; one focus stop per card
        self.check.clicked.connect(self._clicked)
        title = self.title = QLabel()
        title.setTextFormat(Qt.TextFormat.PlainText)
        bold = title.font()
        bold.setBold(True)
        title.setFont(bold)
        title.setToolTip(rec.path)
        title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._fit_title()
        self.check.setVisible(markable)
        # A similar shot may also be a copy in a duplicate group, and marked there: say so, never hide it.
        self.elsewhere = QLabel("<i>Marked for removal as a copy (in Duplicates)</i>")
        self.elsewhere.setWordWrap(True)
        self.elsewhere.hide()
        # verified as one photo with the others, but not surely (Member.unsure): auto-select leaves it
        self.unsure = QLabel(unsure_text(unsure_with, twins, members))
        self.unsure.setObjectName("Unsure")
        self.unsure.setWordWrap(True)
        self.unsure.setToolTip(
            "The check lined them up as one photo, but what differs between them looks more like another "
            "capture of the scene than an edit"
        )
        self.unsure.setVisible(markable and bool(unsure_with))  # the best copy too: a rule may keep another
        self.difference = QPushButton("What changed?")
        self.difference.setToolTip("Line this copy up with the best copy and show where they differ")
        self.difference.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.difference.clicked.connect(lambda: self.show_difference.emit(self.rec.path))
        self.difference.setVisible(markable and not best)
        tags = []
        if best and markable:
            tags.append("best copy")
        if reference:
            tags.append("reference folder")
        if twins:  # byte-identical files: exact copies of each other, whatever else the group holds
            tags.append(f"same bytes as {_names(twins)}")
        if raw_pair:  # a RAW file and the JPEG its camera wrote with it: kept together on purpose
            tags.append("RAW+JPEG pair")
        if rec.upscaled:  # more pixels than its camera recorded: an enlarged export, not more photo
            tags.append("enlarged past the camera's size")
        facts = QFormLayout()
        facts.setContentsMargins(0, 0, 0, 0)
        facts.setHorizontalSpacing(8)
        facts.setVerticalSpacing(2)
        folder = QLabel(rec.folder)
        folder.setWordWrap(True)
        folder.setToolTip(rec.path)
        self.facts: dict[str, QLabel] = {}
        for label, value in (
            ("Resolution", QLabel(f"{rec.width} × {rec.height}")),
            ("Size", QLabel(human_bytes(rec.size))),
            (taken_or_modified(rec)[0], QLabel(taken_or_modified(rec)[1])),
            ("Format", QLabel(rec.format)),
            (
                "Similarity",
                QLabel(
                    ("best copy" if markable else "the others compared to this")
                    if best
                    else percent(similarity)
                ),
            ),
            ("Folder", folder),
        ):
            value.setWordWrap(True)
            fact = "Date" if label in ("Taken", "Modified") else label
            if fact in better:  # this copy has the best of it in the group: say so at a glance
                value.setText(f"<b>{value.text()}</b> ✓")
                value.setToolTip(BETTER_TIPS[fact])
            self.facts[fact] = value
            facts.addRow(f"{label}:", value)
        lay = QVBoxLayout(self)
        lay.addWidget(self.image)
        lay.addWidget(title)
        if tags:
            tag_label = QLabel(f"<i>{', '.join(tags)}</i>")
            tag_label.setWordWrap(True)  # "same bytes as <a long name>" must not be cut at the card's edge
            lay.addWidget(tag_label)
        lay.addWidget(self.check)
        lay.addWidget(self.unsure)
        lay.addWidget(self.elsewhere)
        lay.addWidget(self.difference)
        lay.addLayout(facts)
        lay.addStretch(1)
        self.refresh_image()

    def set_side(self, side: int) -> None:
        """Fit the card to ``side`` pixels of picture (the pane shares its width among the cards)."""
        self.side = side
        self.setFixedWidth(side + 24)
        self.image.setFixedSize(side, side)
        if hasattr(self, "check"):
            self._fit_title()
            self.refresh_image()

    def _fit_title(self) -> None:
        """The file's name on one line; a long one ends in an ellipsis (the tooltip has the whole path)."""
        name = self.rec.path.rsplit("/", 1)[-1]
        self.title.setText(self.title.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, self.side))

    def refresh_image(self) -> None:
        pm = self.thumbs.pixmap(self.rec.path)
        if pm is not None:
            self.image.setPixmap(
                pm.scaled(
                    self.side,
                    self.side,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
        elif self.thumbs.failed(self.rec.path):
            self.image.setText("cannot show this image")

    def set_marked(self, on: bool) -> None:
        self.elsewhere.setVisible(on and not self.markable)
        on = on and self.markable
        self.check.setChecked(on)
        if self.property("marked") != on:
            self.setProperty("marked", on)
            self.style().unpolish(self)  # the style sheet's [marked="true"] rule follows the property
            self.style().polish(self)
            self.update()

    def _clicked(self) -> None:
        self.check.setChecked(not self.check.isChecked())  # the marks decide, through set_marked
        self.toggle.emit(self.rec.path)

    @Slot(QPoint)
    def _menu(self, pos: QPoint) -> None:
        self.menu.emit(self.rec.path, self.mapToGlobal(pos))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space:
            if self.markable:
                self.toggle.emit(self.rec.path)
        elif event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.open_viewer.emit(self.rec.path)
        elif event.key() in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            self.step.emit(self.rec.path, 1 if event.key() == Qt.Key.Key_Right else -1)
        elif event.key() == Qt.Key.Key_Menu:
            self.menu.emit(self.rec.path, self.mapToGlobal(self.rect().center()))
        else:
            super().keyPressEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.open_viewer.emit(self.rec.path)


class ComparePane(QScrollArea):
    """A horizontal row of ``MemberCard``s for one group."""

    toggle = Signal(str)
    menu = Signal(str, QPoint)
    open_viewer = Signal(str)
    show_difference = Signal(str)

    def __init__(self, thumbs: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumbs = thumbs
        self.setWidgetResizable(True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the cards take the focus, one stop each, not the pane
        self.cards: list[MemberCard] = []
        self._host = QWidget()
        # A marked card has a solid highlight border; the card with the keyboard focus a thick dashed one,
        # so a person moving with Tab and the arrows sees where Space and Enter will act. Set once here (a
        # style sheet per card costs ~20 ms a card to polish).
        self._host.setStyleSheet(CARD_STYLE)
        self._row = QHBoxLayout(self._host)
        self._row.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setWidget(self._host)
        thumbs.ready.connect(self._thumb_ready)

    def show_group(
        self,
        group: Group | None,
        records: list[ImageRecord],
        marked: frozenset[str],
        is_reference,
        *,
        markable: bool = True,
    ) -> None:
        """Cards for ``group``; ``markable=False`` for similar shots (no mark boxes; a shot that is ``marked``
        as a copy in a duplicate group says so)."""
        for card in self.cards:
            self._row.removeWidget(card)
            card.deleteLater()
        self.cards = []
        if group is None:
            return
        better = better_facts(records)
        paired = {r.path for pair in group.raw_pairs for r in pair}
        for k, (m, rec) in enumerate(zip(group.members, records, strict=True)):
            card = MemberCard(
                rec,
                m.similarity,
                k == 0,
                is_reference(rec.path),
                self.thumbs,
                self._host,
                markable=markable,
                better=better[k],
                raw_pair=rec.path in paired,
                unsure_with=m.unsure_with,
                members=frozenset(group.paths),
                twins=tuple(o.file.path for o in group.twins(m)),
            )
            card.toggle.connect(self.toggle)
            card.show_difference.connect(self.show_difference)
            card.menu.connect(self.menu)
            card.open_viewer.connect(self.open_viewer)
            card.step.connect(self._step)
            card.set_marked(rec.path in marked)
            self._row.addWidget(card)
            card.show()  # now, not on the next event loop pass: Enter on the groups may focus it at once
            self.cards.append(card)
        self._fit_cards()

    def _fit_cards(self) -> None:
        if not self.cards:
            return
        room = self.viewport().width() - 12 - 30 * len(self.cards)
        side = max(MIN_IMAGE, min(CARD_IMAGE, room // len(self.cards)))
        for card in self.cards:
            if card.side != side:
                card.set_side(side)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_cards()

    def set_marked(self, marked: frozenset[str]) -> None:
        for card in self.cards:
            card.set_marked(card.rec.path in marked)

    def card(self, path: str) -> MemberCard | None:
        return next((c for c in self.cards if c.rec.path == path), None)

    @Slot(str)
    def _thumb_ready(self, path: str) -> None:
        card = self.card(path)
        if card is not None:
            card.refresh_image()

    @Slot(str, int)
    def _step(self, path: str, delta: int) -> None:
        k = next((i for i, c in enumerate(self.cards) if c.rec.path == path), 0)
        k = max(0, min(len(self.cards) - 1, k + delta))
        self.cards[k].setFocus()
        self.ensureWidgetVisible(self.cards[k])
