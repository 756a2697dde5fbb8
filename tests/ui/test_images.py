"""Thumbnails and placeholders are made once and cached on disk."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ui import images


def test_placeholder_is_made_once_and_coloured_by_category(tmp_path: Path):
    images.set_cache_dir(tmp_path)
    a = images.placeholder("hs-honey-500g", "野生蜂蜜 500g", "drinks")
    mtime = a.stat().st_mtime_ns
    assert images.placeholder("hs-honey-500g", "野生蜂蜜 500g", "drinks") == a
    assert a.stat().st_mtime_ns == mtime
    b = images.placeholder("hs-eggs-10", "土鸡蛋 10枚", "poultry-meat-eggs")
    corner = lambda p: Image.open(p).convert("RGB").getpixel((2, 2))  # noqa: E731
    assert corner(a) != corner(b)


def test_photo_becomes_a_cached_square_thumbnail(tmp_path: Path):
    images.set_cache_dir(tmp_path / "cache")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (1600, 900), "#336699").save(photos / "zr-rice-5kg.jpg")
    p = images.product_image("zr-rice-5kg", "生态大米 5kg", "grain-oil-goods", photos)
    with Image.open(p) as im:
        assert im.size == (images.THUMB_PX, images.THUMB_PX)
    assert images.product_image("zr-rice-5kg", "生态大米 5kg", "grain-oil-goods", photos) == p
    # No photo: the placeholder.
    q = images.product_image("hs-tea-100g", "会山山茶 100g", "drinks", photos)
    assert "/ph-" in q


def test_qr_code_is_a_png(tmp_path: Path):
    images.set_cache_dir(tmp_path)
    p = images.qr_png("http://127.0.0.1:8080/s/QH-0001/abc")
    with Image.open(p) as im:
        assert im.size[0] >= 300
