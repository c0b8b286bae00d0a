"""Progress bars of a ``runner predict`` run: over the images, and over the tiles of the current one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm


class Progress:
    """tqdm bars over images and over the tiles of the current image (stderr; silent when disabled)."""

    def __init__(self, n_images: int, *, enabled: bool, on_tiles: Callable[[int, int], None] | None = None):
        self.enabled = enabled
        self.on_tiles = on_tiles
        self.n_images = n_images
        self.images: tqdm | None = None
        self.tile_bar: tqdm | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from tqdm import tqdm

            self.images = tqdm(total=self.n_images, desc="images", unit="img", position=0, dynamic_ncols=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.tile_bar is not None:
            self.tile_bar.close()
        if self.images is not None:
            self.images.close()

    def start(self, name: str) -> None:
        if self.images is not None:
            self.images.set_postfix_str(name[:40])

    def tiles(self, done: int, total: int) -> None:
        if self.on_tiles is not None:
            self.on_tiles(done, total)
        if not self.enabled:
            return
        if self.tile_bar is None:
            from tqdm import tqdm

            self.tile_bar = tqdm(
                total=total, desc="tiles", unit="tile", position=1, leave=False, dynamic_ncols=True
            )
        self.tile_bar.n = done
        self.tile_bar.refresh()

    def finish(self) -> None:
        if self.tile_bar is not None:
            self.tile_bar.close()
            self.tile_bar = None
        if self.images is not None:
            self.images.update(1)
