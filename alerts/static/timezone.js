// Pre-fill the visitor's time zone; without JavaScript the field keeps UTC.
(function () {
  var field = document.getElementById("timezone");
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (field && zone && field.value === "UTC") { field.value = zone; }
  } catch (e) {}
})();
