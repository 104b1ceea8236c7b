// bypass-idp console: the Copy button of the "Bypass code" window.
document.querySelectorAll("[data-copy]").forEach((button) => {
  button.addEventListener("click", () => {
    const field = document.getElementById(button.dataset.copy);
    field.select();
    navigator.clipboard?.writeText(field.value);
    button.textContent = "Copied";
  });
});
