"""Paints one group row: a strip of thumbnails, the count, the space it frees, an exact-copy badge.

Every row has the same size (the view sets ``uniformItemSizes``), and only visible rows are painted and
ask for thumbnails, so 10,000 groups scroll smoothly.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from desktop.group_model import GroupRole, MarkedRole, RecordsRole, SummaryRole
from desktop.thumbnails import ThumbnailCache

THUMB = 56
PAD = 6
STRIP = 4  # thumbnails shown per row, at most
TEXT = 120  # room kept for the text column


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
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(text_color)
        extra = f"  (+{len(records) - strip} more)" if len(records) > strip else ""
        headline, detail = index.data(SummaryRole) or (f"{len(records)} copies", "")
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, f"{headline}{extra}"
        )
        painter.setFont(option.font)
        painter.setPen(dim)
        lines = [detail]
        marked = index.data(MarkedRole) or 0
        if marked:
            lines.append(f"{marked} marked")
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, lines[0])
        if len(lines) > 1:
            painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom, lines[1])
        if group is not None and group.exact:
            self._badge(painter, option, text_rect, "EXACT")
        painter.restore()

    def _badge(self, painter: QPainter, option: QStyleOptionViewItem, area: QRect, text: str) -> None:
        font = QFont(option.font)
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        font.setBold(True)
        painter.setFont(font)
        fm = painter.fontMetrics()
        w, h = fm.horizontalAdvance(text) + 10, fm.height() + 2
        box = QRect(area.right() - w, area.bottom() - h, w, h)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(46, 125, 50))
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor("white"))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
