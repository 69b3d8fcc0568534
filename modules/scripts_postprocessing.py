"""A1111 compatibility surface: ``modules.scripts_postprocessing`` (Extras-tab scripts)."""

from __future__ import annotations

from typing import Any


class PostprocessedImageSharedInfo:
    target_width: int | None = None
    target_height: int | None = None


class PostprocessedImage:
    def __init__(self, image: Any):
        self.image = image
        self.info: dict = {}
        self.shared = PostprocessedImageSharedInfo()
        self.extra_images: list = []
        self.nametags: list = []
        self.disable_processing = False
        self.caption = None


class ScriptPostprocessing:
    filename: str | None = None
    controls = None
    args_from = 0
    args_to = 0
    order = 1000
    name: str | None = None
    group = None

    def ui(self) -> Any:
        pass

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        pass

    def process_firstpass(self, pp: PostprocessedImage, **args: Any) -> None:
        pass

    def image_changed(self) -> None:
        pass
