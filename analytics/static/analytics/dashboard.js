// Draws the managers' charts from the data the page carries. After drawing, each canvas
// gets data-drawn="<number of data points>" so a browser test can tell a chart drew data.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const palette = ["#417690", "#e07a5f", "#81b29a", "#f2cc8f", "#3d405b", "#9c6644"];

  function draw(id, config, points) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    config.options = Object.assign({ animation: false, responsive: true,
      maintainAspectRatio: false }, config.options || {});
    new Chart(canvas, config);
    canvas.dataset.drawn = String(points);
  }

  // Each currency on an axis of its own: a euro and a pound are not one unit of height.
  const channels = Object.keys(data.sales.channels);
  const currencyOf = (name) => data.sales.currencies[name];
  const salesCurrencies = [...new Set(channels.map(currencyOf))];
  const salesScales = { x: { ticks: { maxTicksLimit: 8 } } };
  salesCurrencies.forEach((currency, i) => {
    salesScales[currency] = { type: "linear", axis: "y", position: i % 2 ? "right" : "left",
      title: { display: true, text: currency }, grid: { drawOnChartArea: i === 0 } };
  });
  draw("chart-sales", {
    type: "line",
    data: {
      labels: data.sales.days,
      datasets: channels.map((name, i) => ({
        label: `${name} (${currencyOf(name)})`, data: data.sales.channels[name],
        yAxisID: currencyOf(name), borderColor: palette[i % palette.length],
        pointRadius: 0, tension: 0.2,
      })),
    },
    options: { scales: salesScales },
  }, channels.reduce((n, c) => n + data.sales.channels[c].filter((v) => v > 0).length, 0));

  const productCurrencies = new Set(data.top_products.map((p) => p.currency));
  draw("chart-top-products", {
    type: "bar",
    data: {
      labels: data.top_products.map((p) => (productCurrencies.size > 1
        ? `${p.sku} (${p.currency})` : p.sku)),
      datasets: [{ label: "revenue", data: data.top_products.map((p) => p.revenue),
        backgroundColor: palette[0] }],
    },
    options: { indexAxis: "y" },
  }, data.top_products.length);

  draw("chart-stock", {
    type: "bar",
    data: {
      labels: data.stock.map((s) => s.location_code),
      datasets: [
        { label: "out of stock", data: data.stock.map((s) => s.out), backgroundColor: palette[1] },
        { label: "low", data: data.stock.map((s) => s.low), backgroundColor: palette[3] },
        // Oversold shelves are counted in "out of stock" too: a bar of their own beside it,
        // not stacked on it, so the shelves are not counted twice in the bar's height.
        { label: "of which oversold", data: data.stock.map((s) => s.negative),
          backgroundColor: palette[4], stack: "oversold" },
      ],
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true } } },
  }, data.stock.length);

  draw("chart-segments", {
    type: "doughnut",
    data: {
      labels: data.segments.map((s) => s.segment),
      datasets: [{ data: data.segments.map((s) => s.members), backgroundColor: palette }],
    },
  }, data.segments.length);

  draw("chart-clv", {
    type: "bar",
    data: { labels: data.clv.labels,
      datasets: [{ label: "members", data: data.clv.counts, backgroundColor: palette[2] }] },
  }, data.clv.counts.filter((n) => n > 0).length);

  document.querySelectorAll("#retention-heatmap td.cell").forEach((cell) => {
    const rate = parseFloat(cell.dataset.rate);
    if (!isNaN(rate)) cell.style.background = `rgba(65, 118, 144, ${0.1 + 0.9 * rate})`;
  });
})();
