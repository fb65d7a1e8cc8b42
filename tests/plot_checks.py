"""What the chart tests check of a PNG: it is there, it decodes, and it is big enough to read."""

import os


def assert_png(path, min_width: int = 300, min_height: int = 200) -> tuple[int, int]:
    """Asserts ``path`` is a readable PNG of at least ``min_width`` x ``min_height`` pixels; returns its size."""
    from PIL import Image

    assert os.path.isfile(path), f"{path}: no such file"
    with Image.open(path) as image:
        assert image.format == "PNG", f"{path}: {image.format}, not PNG"
        image.load()  # decodes every pixel: a truncated file fails here
        width, height = image.size
    assert width >= min_width and height >= min_height, f"{path}: {width}x{height} pixels"
    assert not [n for n in os.listdir(os.path.dirname(path) or ".") if n.startswith(".tmp-")], "temporary file left"
    return width, height
