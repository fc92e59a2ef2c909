// The only script the pages need: open the explain entry a number links to.
function openExplain(id) {
  const el = document.getElementById(id);
  if (!el) return;
  for (let d = el; d; d = d.parentElement) { if (d.tagName === "DETAILS") d.open = true; }
  el.scrollIntoView({ block: "center" });
  el.classList.add("flash");
  setTimeout(() => el.classList.remove("flash"), 1500);
}
document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a.num");
  if (!a) return;
  ev.preventDefault();
  history.replaceState(null, "", "#" + a.dataset.explain);
  openExplain(a.dataset.explain);
});
window.addEventListener("DOMContentLoaded", () => {
  if (location.hash.length > 1) openExplain(location.hash.slice(1));
  // Fleet page: refresh the result on an interval, keeping the form's inputs (they are in the URL).
  const r = document.querySelector("[data-refresh-seconds]");
  if (r) {
    const s = Number(r.dataset.refreshSeconds);
    if (s > 0) setTimeout(() => location.reload(), s * 1000);
  }
});
