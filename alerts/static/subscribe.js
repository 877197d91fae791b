// Enter in the search box searches; Enter in any other field subscribes. Without
// JavaScript, Enter anywhere searches (the form's first button): that sends nothing and
// keeps everything typed, and the Subscribe button subscribes.
(function () {
  var form = document.getElementById("subscribe-form");
  var search = document.getElementById("search-button");
  var subscribe = document.getElementById("subscribe-button");
  if (!form || !search || !subscribe) { return; }
  form.addEventListener("keydown", function (event) {
    var field = event.target;
    if (event.key !== "Enter" || event.isComposing || field.tagName !== "INPUT") { return; }
    event.preventDefault();
    (field.id === "q" ? search : subscribe).click();
  });
})();
