// Marks on <body> how many images loaded and how many failed, once the page has loaded: a plain signal
// for people and for headless checks that every plot and typeset equation arrived.
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.loadedImages = String(loaded);
  document.body.dataset.brokenImages = String(images.length - loaded);
});
