// The runs table: a filter that does not parse comes back as a 400 whose table says why;
// htmx would drop an error response, so it is swapped in like any other.
document.addEventListener("htmx:beforeSwap", function (event) {
  if (event.detail.xhr.status === 400 && event.detail.target.id === "runs-table") {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

// The runs table's tree: a parent's button folds or unfolds every run nested under it.
// Delegated from the document, so it keeps working after htmx swaps the table.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.fold");
  if (!button) return;
  event.preventDefault();
  var open = button.getAttribute("aria-expanded") === "true";
  button.setAttribute("aria-expanded", open ? "false" : "true");
  button.textContent = open ? "▸" : "▾";
  var id = button.dataset.run;
  document.querySelectorAll("#runs tr[data-ancestors]").forEach(function (row) {
    if (row.dataset.ancestors.split(" ").indexOf(id) < 0) return;
    if (open) {
      row.hidden = true;
    } else {
      // Unfolding shows a row again unless a nearer ancestor is still folded.
      var folded = row.dataset.ancestors.split(" ").some(function (a) {
        var b = document.querySelector('#runs button.fold[data-run="' + a + '"]');
        return b && b.getAttribute("aria-expanded") === "false";
      });
      row.hidden = folded;
    }
  });
});
