"""Readers of the DAVIS 2017 and YouTube-VOS 2019 folder layouts, and of the two-labeled-frames split.

In two-shot mode a reader opens only the masks of the labeled frames named in the split's JSON; the other
frames have no mask at all (no dummy files are needed or read).

DAVIS 2017:    <root>/JPEGImages/480p/<video>/00000.jpg, <root>/Annotations/480p/<video>/00000.png (palette
               PNG, pixel = object index), <root>/ImageSets/2017/{train,val}.txt
YouTube-VOS:   <root>/<split>/JPEGImages/<video>/00000.jpg, <root>/<split>/Annotations/<video>/00000.png,
               <root>/<split>/meta.json ({"videos": {video: {"objects": {"1": {"frames": [...]}}}}})
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from common.errors import DatasetError

RESOLUTION = "480p"  # DAVIS's folder name (the generated data keeps it although its frames are small)


@dataclass
class Video:
    name: str
    frames: np.ndarray  # [T, H, W, 3] uint8 RGB
    frame_names: list[str]  # "00000" (no extension)
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # frame index -> [H, W] object indices

    @property
    def objects(self) -> list[int]:
        """Object indices in the masks read (the objects to segment)."""
        found = set()
        for mask in self.masks.values():
            found.update(np.unique(mask).tolist())
        return sorted(found - {0, 255})

    @property
    def labeled(self) -> list[int]:
        return sorted(self.masks)


def davis_palette() -> list[int]:
    """The PASCAL VOC / DAVIS colour map: index i's colour from the bits of i."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for shift in range(7, -1, -1):
            red |= (value & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        palette += [red, green, blue]
    return palette


def save_index_mask(path: Path, mask: np.ndarray) -> None:
    """A palette PNG whose pixel values are object indices (DAVIS's annotation format)."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(davis_palette())
    image.save(path)


def read_index_mask(path: Path, data_card: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise DatasetError(
                    f"{path} is a {image.mode} image; VOS annotations are palette (P) or grey (L) PNGs whose pixel "
                    f"values are object indices ({data_card})."
                )
            return np.array(image)
    except OSError as error:
        raise DatasetError(f"{path} is not a readable PNG mask ({error}); {data_card} describes the layout.") from None


def read_frame(path: Path, data_card: str) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path} is not a readable JPEG frame; {data_card} describes the layout.")
    return image[:, :, ::-1]


def _resized(array: np.ndarray, size: tuple[int, int] | None, nearest: bool) -> np.ndarray:
    if size is None or array.shape[:2] == tuple(size):
        return array
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(array, (size[1], size[0]), interpolation=interpolation)


def read_labeled_frames(path: Path, data_card: str) -> dict[str, list[str]]:
    """The two-shot split: {video: [frame file, frame file]} (frame files as "00030.jpg"), two distinct frames."""
    try:
        split = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetError(f"two-shot split {path} is not readable JSON ({error}); {data_card}.") from None
    bad = [video for video, frames in split.items() if not (isinstance(frames, list) and len(frames) == 2)]
    if bad:
        raise DatasetError(f"two-shot split {path}: videos {bad[:3]} do not list exactly two labeled frames.")
    repeated = [video for video, frames in split.items() if len({Path(frame).stem for frame in frames}) < 2]
    if repeated:
        raise DatasetError(f"two-shot split {path}: videos {repeated[:3]} list the same frame twice.")
    return split


def _read_video(
    name: str, image_dir: Path, mask_dir: Path, mask_frames: list[str] | None, size, data_card: str, require: str
) -> Video:
    """`mask_frames`: the frame names whose masks are read, each required (`require` "labeled"); None: every
    mask present, and `require` says which must be: "every" frame's (full supervision, DAVIS's val split),
    the "first" frame's (videos segmented from it), or "any" one (YouTube-VOS valid: each object's first
    appearance)."""
    paths = sorted(image_dir.glob("*.jpg"))
    if not paths:
        raise DatasetError(f"{image_dir} holds no JPEG frames; {data_card} describes the layout.")
    names = [path.stem for path in paths]
    frames = np.stack([_resized(read_frame(path, data_card), size, nearest=False) for path in paths])
    wanted = names if mask_frames is None else mask_frames
    masks = {}
    for frame in wanted:
        path = mask_dir / f"{frame}.png"
        if frame not in names:
            raise DatasetError(f"labeled frame {frame} of video {name} is not among its frames in {image_dir}.")
        if path.is_file():
            masks[names.index(frame)] = _resized(read_index_mask(path, data_card), size, nearest=True)
        elif mask_frames is not None:
            raise DatasetError(f"the mask of labeled frame {frame} is missing: {path} ({data_card}).")
    missing = [frame for index, frame in enumerate(names) if index not in masks]
    needed = {"every": missing, "first": missing[:1] if 0 not in masks else []}.get(require, [])
    if needed:
        raise DatasetError(
            f"video {name} lacks the masks of {len(needed)} of its frames, first {mask_dir / f'{needed[0]}.png'}: "
            f"{'every frame' if require == 'every' else 'its first frame'} must have one here ({data_card})."
        )
    if require == "any" and not masks:
        raise DatasetError(f"video {name} has no mask in {mask_dir}: it needs at least one ({data_card}).")
    return Video(name=name, frames=frames, frame_names=names, masks=masks)


def _listed(videos: list[str], labeled: dict[str, list[str]] | None, where: str, data_card: str) -> list[str]:
    """The videos of a split to read: all of them, or with the two-shot split those it lists. A video the
    split names but the dataset lacks is an error (a misspelling); videos it leaves out are skipped with a
    note (the official YouTube-VOS split lists 3464 of the 3471 training videos)."""
    if labeled is None:
        return videos
    unknown = sorted(set(labeled) - set(videos))
    if unknown:
        raise DatasetError(
            f"the two-shot split names {len(unknown)} videos that {where} lacks, e.g. {unknown[:3]} ({data_card})."
        )
    left_out = [video for video in videos if video not in labeled]
    if left_out:
        print(f"note: the two-shot split lists no frames of {len(left_out)} videos of {where} ({left_out[:3]}...): "
              f"they are left out of training.")  # fmt: skip
    return [video for video in videos if video in labeled]


def _stems(frames: list[str]) -> list[str]:
    return [Path(frame).stem for frame in frames]


def davis_video_names(root: Path, split: str, data_card: str, resolution: str = RESOLUTION) -> list[str]:
    """The videos of `split` listed in ImageSets/2017/<split>.txt; a folder without that listing (videos to
    segment) gives every video folder under JPEGImages/<resolution>."""
    root = Path(root)
    listing = root / "ImageSets" / "2017" / f"{split}.txt"
    if listing.is_file():
        return [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    folders = sorted(path.name for path in (root / "JPEGImages" / resolution).glob("*") if path.is_dir())
    if not folders:
        raise DatasetError(
            f"DAVIS folder {root} lacks ImageSets/2017/{split}.txt and holds no videos under JPEGImages/{resolution}; "
            f"expected the DAVIS 2017 layout (JPEGImages/{resolution}, Annotations/{resolution}, ImageSets/2017); "
            f"see {data_card}."
        )
    return folders


def read_davis(
    root: Path,
    split: str,
    data_card: str,
    labeled: dict[str, list[str]] | None = None,
    size: tuple[int, int] | None = None,
    resolution: str = RESOLUTION,
    annotations: Path | None = None,
    listed_only: bool = True,
    require: str = "every",
) -> list[Video]:
    """Videos of `split` (ImageSets/2017/<split>.txt; with `listed_only` false, every video folder when that
    listing is absent). With `labeled`, only those frames' masks are read; `annotations` replaces
    <root>/Annotations/<resolution> (e.g. a pseudo-label bank in the same layout); `require`: see _read_video."""
    root = Path(root)
    listing = root / "ImageSets" / "2017" / f"{split}.txt"
    if listed_only and not listing.is_file():
        raise DatasetError(
            f"DAVIS folder {root} lacks {listing.relative_to(root)}; expected the DAVIS 2017 layout "
            f"(JPEGImages/{resolution}, Annotations/{resolution}, ImageSets/2017); see {data_card}."
        )
    videos = _listed(davis_video_names(root, split, data_card, resolution), labeled, f"{root} ({split})", data_card)
    mask_root = annotations or root / "Annotations" / resolution
    return [
        _read_video(
            video,
            root / "JPEGImages" / resolution / video,
            mask_root / video,
            None if labeled is None else _stems(labeled[video]),
            size,
            data_card,
            "labeled" if labeled is not None else require,
        )
        for video in videos
    ]


def read_youtube_vos(
    root: Path,
    split: str,
    data_card: str,
    labeled: dict[str, list[str]] | None = None,
    size=None,
    require: str | None = None,
) -> list[Video]:
    """Videos of YouTube-VOS 2019's `split` folder (train or valid), listed by its meta.json. `require` (see
    _read_video): by default every frame's mask in train, any in valid (its objects' first appearances)."""
    folder = Path(root) / split
    meta = folder / "meta.json"
    if not meta.is_file():
        raise DatasetError(
            f"YouTube-VOS folder {folder} lacks meta.json; expected <root>/{split}/{{JPEGImages,Annotations}}/<video> "
            f"and <root>/{split}/meta.json; see {data_card}."
        )
    try:
        listed = sorted(json.loads(meta.read_text())["videos"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        message = f"{meta} is not a YouTube-VOS meta.json with a 'videos' map ({error}); see {data_card}."
        raise DatasetError(message) from None
    require = require or ("every" if split == "train" else "any")
    return [
        _read_video(
            video,
            folder / "JPEGImages" / video,
            folder / "Annotations" / video,
            None if labeled is None else _stems(labeled[video]),
            size,
            data_card,
            "labeled" if labeled is not None else require,
        )
        for video in _listed(listed, labeled, str(folder), data_card)
    ]
