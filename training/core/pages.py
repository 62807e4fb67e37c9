"""What our HTML pages share (the report's and the drift report's): the script that counts the
plots the browser loaded, which the tests read from headless Chromium."""

from __future__ import annotations

__all__ = ["IMAGES_LOADED_SCRIPT"]

#: Sets ``data-images-loaded`` and ``data-images`` on the body once the page has loaded, and
#: writes "N of M plots loaded" into the element with id ``loaded``.
IMAGES_LOADED_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = loaded;
  document.body.dataset.images = images.length;
  document.getElementById("loaded").textContent = `${loaded} of ${images.length} plots loaded`;
});
</script>
"""
