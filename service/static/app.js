// The digits web page: draw or upload a digit, POST it to /v1/predict like any client.
// No framework and no build step: this file is served as it is.
"use strict";

(() => {
  // Relative, so the page also works under a reverse proxy's path prefix.
  const PREDICT_URL = "v1/predict";
  const READY_URL = "readyz";

  const pad = document.getElementById("pad");
  // Each stroke reads the pad back once (getImageData): keep it in CPU memory.
  const context = pad.getContext("2d", { willReadFrequently: true });
  const hint = document.getElementById("pad-hint");
  const fileInput = document.getElementById("file");
  const result = document.getElementById("result");
  const digitView = document.getElementById("digit");
  const statusView = document.getElementById("status");
  const confidenceView = document.getElementById("confidence");
  const errorView = document.getElementById("error");
  const bars = document.getElementById("bars");
  const seen = document.getElementById("seen");
  const seenEmpty = document.getElementById("seen-empty");
  const modelView = document.getElementById("model");

  // Only the answer to the latest request is shown: an older one may arrive later.
  let latestRequest = 0;
  let drawing = null; // the pointer id of the stroke in progress
  let hasInk = false;
  let showingUpload = false;

  const barFills = [];
  const barValues = [];
  for (let digit = 0; digit <= 9; digit += 1) {
    const item = document.createElement("li");
    item.className = "bar";
    item.innerHTML =
      '<span class="bar-value">–</span>' +
      '<span class="bar-track"><span class="bar-fill"></span></span>' +
      `<span class="bar-label">${digit}</span>`;
    bars.appendChild(item);
    barValues.push(item.querySelector(".bar-value"));
    barFills.push(item.querySelector(".bar-fill"));
  }

  // --- drawing -----------------------------------------------------------------------

  function setUpPen() {
    // MNIST strokes are about 1/14 of the digit's frame; round caps and joins keep
    // a fast stroke from turning into disconnected segments.
    context.lineWidth = pad.width / 14;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.strokeStyle = "#111827";
    context.fillStyle = "#111827";
  }

  function toCanvas(event) {
    const box = pad.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * pad.width) / box.width,
      y: ((event.clientY - box.top) * pad.height) / box.height,
    };
  }

  function clearPad() {
    context.clearRect(0, 0, pad.width, pad.height);
    hasInk = false;
    showingUpload = false;
    hint.hidden = false;
  }

  // The stroke in progress is redrawn whole from its points over the pad as it was
  // before the stroke: one path has clean joins, unlike segments drawn one by one.
  let strokePoints = [];
  let beforeStroke = null;

  function drawStroke() {
    context.putImageData(beforeStroke, 0, 0);
    context.beginPath();
    const [first, ...rest] = strokePoints;
    if (rest.length === 0) {
      context.arc(first.x, first.y, context.lineWidth / 2, 0, 2 * Math.PI);
      context.fill(); // a tap leaves a dot
      return;
    }
    context.moveTo(first.x, first.y);
    for (const point of rest) context.lineTo(point.x, point.y);
    context.stroke();
  }

  pad.addEventListener("pointerdown", (event) => {
    if (drawing !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    if (showingUpload) clearPad();
    drawing = event.pointerId;
    pad.setPointerCapture(event.pointerId);
    hint.hidden = true;
    beforeStroke = context.getImageData(0, 0, pad.width, pad.height);
    strokePoints = [toCanvas(event)];
    drawStroke();
    hasInk = true;
  });

  pad.addEventListener("pointermove", (event) => {
    if (event.pointerId !== drawing) return;
    // Coalesced events keep fast strokes smooth where the browser batches moves.
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const each of events.length ? events : [event]) strokePoints.push(toCanvas(each));
    drawStroke();
  });

  function endStroke(event) {
    if (event.pointerId !== drawing) return;
    drawing = null;
    beforeStroke = null;
    if (hasInk) predict(pad.toDataURL("image/png"));
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  // --- buttons -------------------------------------------------------------------------

  document.getElementById("clear").addEventListener("click", () => {
    clearPad();
    latestRequest += 1; // an answer still on its way is for a drawing that is gone
    showIdle();
  });

  document.getElementById("upload").addEventListener("click", () => fileInput.click());

  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    fileInput.value = ""; // choosing the same file again must fire "change" again
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      showUpload(reader.result);
      predict(reader.result); // the file as it is: the service does the preprocessing
    };
    reader.onerror = () => showError(`Cannot read ${file.name}.`);
    reader.readAsDataURL(file);
  });

  function showUpload(dataUrl) {
    clearPad();
    showingUpload = true;
    hint.hidden = true;
    const picture = new Image();
    picture.onload = () => {
      // Fit the picture in the pad; small images (e.g. 28×28) stay sharp when enlarged.
      const scale = Math.min(pad.width / picture.width, pad.height / picture.height);
      const width = picture.width * scale;
      const height = picture.height * scale;
      context.imageSmoothingEnabled = scale < 1;
      context.drawImage(picture, (pad.width - width) / 2, (pad.height - height) / 2, width, height);
    };
    picture.src = dataUrl; // a file the browser cannot show is still sent to the service
  }

  // --- the API -------------------------------------------------------------------------

  async function predict(dataUrl) {
    latestRequest += 1;
    const request = latestRequest;
    result.setAttribute("aria-busy", "true");
    result.dataset.state = "pending";
    let response;
    let body;
    try {
      response = await fetch(PREDICT_URL, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({
          images: [{ data: dataUrl }],
          top_k: 3,
          return_preprocessed: true,
        }),
      });
      body = await response.json().catch(() => null);
    } catch (error) {
      if (request === latestRequest) showError("Cannot reach the service. Is it running?");
      return;
    }
    if (request !== latestRequest) return;
    if (!response.ok) {
      showError(describeError(response, body));
      return;
    }
    showPrediction(body.predictions[0]);
  }

  function describeError(response, body) {
    const error = body && body.error;
    const message = error && error.message ? error.message : response.statusText || "request failed";
    const code = error && error.code ? `, ${error.code}` : "";
    return `The service refused this image (HTTP ${response.status}${code}): ${message}`;
  }

  // --- showing results -----------------------------------------------------------------

  function finish(state) {
    result.dataset.state = state;
    result.setAttribute("aria-busy", "false");
  }

  function showPrediction(prediction) {
    // The model may say the image is no digit at all (a letter, a shape, a scribble): then
    // say so instead of naming a digit. The bars still show each digit's probability
    // (they sum to 1 minus not_a_digit). An answer without is_digit is a digit.
    const isDigit = prediction.is_digit !== false;
    if (isDigit) {
      digitView.textContent = String(prediction.digit);
      statusView.textContent = `The model reads a ${prediction.digit}.`;
      confidenceView.textContent = `Confidence ${formatPercent(prediction.confidence)}`;
    } else {
      digitView.textContent = "✕";
      statusView.textContent = "That does not look like a digit.";
      confidenceView.textContent = `Not a digit: ${formatPercent(prediction.not_a_digit)}`;
    }
    errorView.hidden = true;
    errorView.textContent = "";
    prediction.probabilities.forEach((probability, digit) => {
      barFills[digit].style.height = `${(probability * 100).toFixed(1)}%`;
      barValues[digit].textContent = formatPercent(probability, 0);
      const item = barFills[digit].closest(".bar");
      item.classList.toggle("best", isDigit && digit === prediction.digit);
      item.setAttribute("aria-label", `${digit}: ${formatPercent(probability)}`);
    });
    if (prediction.preprocessed) {
      seen.src = `data:image/png;base64,${prediction.preprocessed}`;
      seen.alt = isDigit
        ? `The 28 by 28 image the model saw for this ${prediction.digit}`
        : "The 28 by 28 image the model saw";
      seen.hidden = false;
      seenEmpty.hidden = true;
    }
    result.dataset.digit = String(prediction.digit);
    result.dataset.confidence = String(prediction.confidence);
    result.dataset.isDigit = String(isDigit);
    if (prediction.not_a_digit !== null && prediction.not_a_digit !== undefined) {
      result.dataset.notADigit = String(prediction.not_a_digit);
    } else {
      delete result.dataset.notADigit;
    }
    finish("done");
  }

  function resetResult() {
    digitView.textContent = "?";
    confidenceView.textContent = "";
    delete result.dataset.digit;
    delete result.dataset.confidence;
    delete result.dataset.isDigit;
    delete result.dataset.notADigit;
    barFills.forEach((fill, digit) => {
      fill.style.height = "0";
      barValues[digit].textContent = "–";
      const item = fill.closest(".bar");
      item.classList.remove("best");
      item.removeAttribute("aria-label");
    });
    seen.hidden = true;
    seen.removeAttribute("src");
    seenEmpty.hidden = false;
  }

  function showIdle() {
    resetResult();
    errorView.hidden = true;
    errorView.textContent = "";
    statusView.textContent = "Draw or upload a digit to see what the model reads.";
    finish("idle");
  }

  function showError(message) {
    resetResult();
    statusView.textContent = "No prediction.";
    errorView.textContent = message;
    errorView.hidden = false;
    finish("error");
  }

  function formatPercent(probability, digits = 1) {
    return `${(probability * 100).toFixed(digits)}%`;
  }

  async function showModel() {
    try {
      const response = await fetch(READY_URL, { headers: { Accept: "application/json" } });
      const body = await response.json();
      modelView.textContent = body.model
        ? `Model: ${body.model.name} ${body.model.version}`
        : `Model: ${body.status}${body.detail ? ` (${body.detail})` : ""}`;
    } catch (error) {
      modelView.textContent = "Model: service unreachable";
    }
  }

  setUpPen();
  showIdle();
  showModel();
})();
