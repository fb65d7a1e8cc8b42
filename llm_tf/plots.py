"""What every chart of the package shares: matplotlib with the Agg backend, imported lazily, and
an atomic PNG write.

Each chart lives in a small module next to the data it draws (:mod:`llm_tf.data.statistics_plots`,
:mod:`llm_tf.training.curves`, :mod:`llm_tf.export.evaluation_plots`,
:mod:`llm_tf.export.tflite_report`); none imports matplotlib before it draws.
"""

import io

from llm_tf.io_utils import atomic_write_bytes

#: Resolution of every PNG written (pixels per inch of the figure size).
DPI = 100


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure, path: str, dpi: int = DPI) -> None:
    """Writes ``figure`` to ``path`` as a PNG atomically and closes it; nothing drawn is cut off
    (the PNG is cropped to what the figure holds, with a small margin).

    Args:
        figure: A matplotlib figure.
        path: The PNG to write (local, its directory existing, or ``gs://``).
        dpi: Resolution.
    """
    plt = pyplot()
    try:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.15)
    finally:
        plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def annotate_bars(ax, bars, texts: list[str], horizontal: bool = False, fontsize: float = 8) -> None:
    """Writes ``texts`` at the end of each bar (above it, or right of it when ``horizontal``)."""
    for bar, text in zip(bars, texts):
        if horizontal:
            ax.annotate(text, (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                        textcoords="offset points", va="center", ha="left", fontsize=fontsize)
        else:
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=fontsize)
