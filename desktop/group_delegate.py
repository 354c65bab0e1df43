"""Paints one group row: a strip of thumbnails, the best copy's name, the count, the space it frees, how
alike, the folder, a badge: EXACT (every file byte-identical) or CHECK (a file the check was not sure of).

Every row has the same size (the view sets ``uniformItemSizes``), and only visible rows are painted and
ask for thumbnails, so 10,000 groups scroll smoothly.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from core.results import Group
from desktop.group_model import GroupRole, MarkedRole, RecordsRole, SummaryRole
from desktop.thumbnails import ThumbnailCache

THUMB = 56
PAD = 6
STRIP = 4  # thumbnails shown per row, at most
TEXT = 190  # room kept for the text column: names and folders must stay readable

# A row's badge: every file byte-identical (green), or a file the check was not sure is a copy (amber: auto-
# select leaves it, ``Member.unsure``)
BADGE_COLOURS = {"EXACT": QColor(46, 125, 50), "CHECK": QColor(191, 120, 0)}


def _badge_of(group: Group | None) -> str:
    if group is None:
        return ""
    if group.exact:
        return "EXACT"
    return "CHECK" if group.unsure else ""


class GroupDelegate(QStyledItemDelegate):
    def __init__(self, thumbs: ThumbnailCache, parent=None) -> None:
        super().__init__(parent)
        self.thumbs = thumbs

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return QSize(2 * (THUMB + PAD) + TEXT, THUMB + 2 * PAD)

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        painter.save()
        style = option.widget.style() if option.widget else None
        if style:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        pal = option.palette
        text_color = pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        dim = QColor(text_color)
        dim.setAlpha(170)
        records = index.data(RecordsRole) or []
        group = index.data(GroupRole)
        r = option.rect
        x = r.left() + PAD
        y = r.top() + PAD
        strip = max(1, min(STRIP, (r.width() - TEXT - PAD) // (THUMB + PAD)))
        for rec in records[:strip]:
            box = QRect(x, y, THUMB, THUMB)
            pm = self.thumbs.pixmap(rec.path)
            if pm is not None and not pm.isNull():
                scaled = pm.scaled(
                    THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
                )
                painter.drawPixmap(
                    box.center().x() - scaled.width() // 2 + 1,
                    box.center().y() - scaled.height() // 2 + 1,
                    scaled,
                )
            else:
                painter.fillRect(box, pal.color(QPalette.ColorRole.AlternateBase))
            x += THUMB + PAD
        tx = r.left() + PAD + strip * (THUMB + PAD)
        text_rect = QRect(tx, y, max(10, r.right() - tx - PAD), THUMB)
        top, middle, bottom = self.lines(option, index, text_rect.width())
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(text_color)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, top)
        painter.setFont(option.font)
        painter.setPen(dim)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, middle)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, bottom)
        badge = _badge_of(group)
        if badge:
            self._badge(painter, option, text_rect, badge)
        painter.restore()

    def lines(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex, width: int
    ) -> tuple[str, str, str]:
        """The row's three lines as painted in ``width`` pixels: the best copy's name; files, space, how
        alike; the folder (and how many are marked). Long ones end in an ellipsis instead of running on."""
        records = index.data(RecordsRole) or []
        group = index.data(GroupRole)
        name, detail, folder = index.data(SummaryRole) or ("", f"{len(records)} files", "")
        marked = index.data(MarkedRole) or 0
        bold = QFont(option.font)
        bold.setBold(True)
        fm = QFontMetrics(option.font)
        last = f"{folder} · {marked} marked" if marked else folder
        badge = self._badge_width(option, _badge_of(group)) + PAD if _badge_of(group) else 0
        return (
            QFontMetrics(bold).elidedText(name, Qt.TextElideMode.ElideRight, width),
            fm.elidedText(detail, Qt.TextElideMode.ElideRight, width),
            # the folder's end (its own name) is what tells folders apart: cut from the left
            fm.elidedText(last, Qt.TextElideMode.ElideLeft, max(10, width - badge)),
        )

    @staticmethod
    def _badge_font(option: QStyleOptionViewItem) -> QFont:
        font = QFont(option.font)
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        font.setBold(True)
        return font

    def _badge_width(self, option: QStyleOptionViewItem, text: str = "EXACT") -> int:
        return QFontMetrics(self._badge_font(option)).horizontalAdvance(text) + 10

    def _badge(self, painter: QPainter, option: QStyleOptionViewItem, area: QRect, text: str) -> None:
        painter.setFont(self._badge_font(option))
        fm = painter.fontMetrics()
        w, h = fm.horizontalAdvance(text) + 10, fm.height() + 2
        box = QRect(area.right() - w, area.bottom() - h, w, h)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(BADGE_COLOURS[text])
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor("white"))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
