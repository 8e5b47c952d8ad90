// Demo page: upload or record audio, POST it to /predict, draw the answer. No libraries.
"use strict";
(function () {
  const form = document.getElementById("upload-form");
  const endpoint = form.dataset.api || "/predict";
  const $ = (id) => document.getElementById(id);
  const LABEL_COLORS = {
    angry: "#b3261e", calm: "#2e7d32", disgust: "#6d4c41", fearful: "#5e35b1",
    happy: "#c77700", neutral: "#546e7a", sad: "#1565c0", surprised: "#ad1457",
  };

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = false;
    $("status").textContent = "";
  }

  async function send(blob, name) {
    $("error").hidden = true;
    $("result").hidden = true;
    $("status").textContent = "Analysing…";
    const body = new FormData();
    body.append("audio", blob, name);
    let response;
    try {
      response = await fetch(endpoint, { method: "POST", body });
    } catch (e) {
      showError("Could not reach the server: " + e.message);
      return;
    }
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      showError(`The server answered ${response.status} without JSON.`);
      return;
    }
    if (!response.ok) {
      const err = data && data.error ? data.error : { message: `HTTP ${response.status}` };
      showError(`Could not analyse this audio: ${err.message}`);
      return;
    }
    $("status").textContent = "Done.";
    draw(data, name);
  }

  function pct(x) { return (100 * x).toFixed(1) + " %"; }

  function draw(data, name) {
    // An uncertain answer is shown as a short list, not one large label
    $("emotion").textContent = data.uncertain ? "Unsure:" : data.emotion;
    $("emotion").style.color = data.uncertain ? "inherit" : (LABEL_COLORS[data.emotion] || "inherit");
    $("confidence").textContent = data.uncertain
      ? data.top_k.map((t) => `${t.emotion} ${pct(t.probability)}`).join(", ")
      : `(${pct(data.confidence)} confidence)`;
    $("result").classList.toggle("uncertain", Boolean(data.uncertain));
    const bars = $("bars");
    bars.replaceChildren();
    const entries = Object.entries(data.probabilities).sort((a, b) => b[1] - a[1]);
    for (const [label, p] of entries) {
      const row = document.createElement("div");
      row.className = "bar-row";
      row.setAttribute("role", "listitem");
      const name = document.createElement("span");
      name.className = "bar-label";
      name.textContent = label;
      const track = document.createElement("span");
      track.className = "bar-track";
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = (100 * p).toFixed(1) + "%";
      fill.style.background = LABEL_COLORS[label] || "#444";
      track.appendChild(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = pct(p);
      row.append(name, track, value);
      bars.appendChild(row);
    }
    const segments = data.segments || [];
    $("timeline-wrap").hidden = segments.length === 0;
    // a long recording leads with its timeline; the average follows, with how many windows agree
    $("result").classList.toggle("long", segments.length > 0);
    $("agreement").textContent = segments.length
      ? `Over the whole recording (${Math.round(100 * data.agreement)} % of the windows agree):` : "";
    const timeline = $("timeline");
    timeline.replaceChildren();
    for (const s of segments) {
      const block = document.createElement("span");
      block.className = "segment";
      block.setAttribute("role", "listitem");
      block.style.background = LABEL_COLORS[s.emotion] || "#444";
      block.style.flexGrow = "1";
      block.textContent = s.emotion;
      block.title = `${s.start.toFixed(1)}–${s.end.toFixed(1)} s: ${s.emotion} (${pct(s.confidence)})`;
      block.setAttribute("aria-label", block.title);
      timeline.appendChild(block);
    }
    $("meta").textContent = `${name}: ${data.duration_s.toFixed(2)} s of audio · model ${data.model.name} ${data.model.version}`;
    $("result").hidden = false;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = $("audio-file").files[0];
    if (!file) { showError("Choose an audio file first."); return; }
    send(file, file.name);
  });

  // Microphone: the browser's own recorder and format (WebM/Opus in Chromium and Firefox,
  // MP4/AAC in Safari), which the server decodes as it is.
  let recording = null;
  const MAX_SECONDS = 30;

  async function startRecording() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.MediaRecorder) {
      showError("This browser cannot record audio here (recording needs https or localhost).");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e) {
      showError("Microphone not available: " + e.message);
      return;
    }
    const recorder = new MediaRecorder(stream);
    const chunks = [];
    const started = performance.now();
    recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      const type = recorder.mimeType || "audio/webm";
      send(new Blob(chunks, { type }), type.includes("mp4") ? "recording.m4a" : "recording.webm");
    };
    const tick = setInterval(() => {
      const seconds = (performance.now() - started) / 1000;
      $("record-status").textContent = `Recording… ${seconds.toFixed(0)} s`;
      if (seconds >= MAX_SECONDS) stopRecording();
    }, 250);
    recorder.start(500);
    recording = { recorder, tick };
    $("record").textContent = "Stop and analyse";
    $("record").setAttribute("aria-pressed", "true");
  }

  function stopRecording() {
    if (!recording) return;
    const { recorder, tick } = recording;
    recording = null;
    clearInterval(tick);
    recorder.stop();
    $("record").textContent = "Record from microphone";
    $("record").setAttribute("aria-pressed", "false");
    $("record-status").textContent = "";
  }

  $("record").addEventListener("click", () => (recording ? stopRecording() : startRecording()));
})();
