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
    draw(data);
  }

  function pct(x) { return (100 * x).toFixed(1) + " %"; }

  function draw(data) {
    $("emotion").textContent = data.emotion;
    $("emotion").style.color = LABEL_COLORS[data.emotion] || "inherit";
    $("confidence").textContent = `(${pct(data.confidence)} confidence)`;
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
    $("meta").textContent = `${data.duration_s.toFixed(2)} s of audio · model ${data.model.name} ${data.model.version}`;
    $("result").hidden = false;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = $("audio-file").files[0];
    if (!file) { showError("Choose an audio file first."); return; }
    send(file, file.name);
  });

  // Microphone: capture raw samples and encode a 16-bit PCM WAV in the page.
  let recording = null;
  const MAX_SECONDS = 30;

  function encodeWav(chunks, rate) {
    const length = chunks.reduce((n, c) => n + c.length, 0);
    const buffer = new ArrayBuffer(44 + 2 * length);
    const view = new DataView(buffer);
    const writeText = (offset, text) => { for (let i = 0; i < text.length; i++) view.setUint8(offset + i, text.charCodeAt(i)); };
    writeText(0, "RIFF"); view.setUint32(4, 36 + 2 * length, true); writeText(8, "WAVE");
    writeText(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
    writeText(36, "data"); view.setUint32(40, 2 * length, true);
    let offset = 44;
    for (const chunk of chunks) {
      for (let i = 0; i < chunk.length; i++, offset += 2) {
        const s = Math.max(-1, Math.min(1, chunk[i]));
        view.setInt16(offset, s < 0 ? s * 0x8000 : s * 0x7fff, true);
      }
    }
    return new Blob([view], { type: "audio/wav" });
  }

  async function startRecording() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
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
    const context = new AudioContext();
    const source = context.createMediaStreamSource(stream);
    const processor = context.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    processor.onaudioprocess = (e) => {
      chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
      const seconds = chunks.length * 4096 / context.sampleRate;
      $("record-status").textContent = `Recording… ${seconds.toFixed(0)} s`;
      if (seconds >= MAX_SECONDS) stopRecording();
    };
    source.connect(processor);
    processor.connect(context.destination);
    recording = { stream, context, processor, chunks };
    $("record").textContent = "Stop and analyse";
    $("record").setAttribute("aria-pressed", "true");
  }

  function stopRecording() {
    if (!recording) return;
    const { stream, context, processor, chunks } = recording;
    recording = null;
    processor.disconnect();
    stream.getTracks().forEach((t) => t.stop());
    const blob = encodeWav(chunks, context.sampleRate);
    context.close();
    $("record").textContent = "Record from microphone";
    $("record").setAttribute("aria-pressed", "false");
    $("record-status").textContent = "";
    send(blob, "recording.wav");
  }

  $("record").addEventListener("click", () => (recording ? stopRecording() : startRecording()));
})();
