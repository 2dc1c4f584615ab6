// served by gatehouse itself
document.addEventListener("DOMContentLoaded", function () {
    document.body.dataset.servedBy = "gatehouse";
});
