// Copy buttons: <button data-copy="ELEMENT-ID" hidden> copies that element's text. Without
// JavaScript the buttons stay hidden and the text stays selectable. No inline script (CSP).
document.querySelectorAll("button[data-copy]").forEach((button) => {
  if (!navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(
      () => { button.textContent = "Copied"; },
      () => { button.textContent = "Copy failed: select the text"; },
    );
  });
});
