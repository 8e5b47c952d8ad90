// Demo page: upload (or drop, or record) a file and POST it to /predict, or stream the
// microphone to the WebSocket /live; draw the answer and its timeline. No libraries.
"use strict";
(function () {
  const form = document.getElementById("upload-form");
  const endpoint = form.dataset.api || "/predict";
  const $ = (id) => document.getElementById(id);
  const WORKLET = new URL("live-worklet.js", document.currentScript.src).href;
  // white text on each of these is at least 4.5:1
  const LABEL_COLORS = {
    angry: "#b3261e", calm: "#2e7d32", disgust: "#6d4c41", fearful: "#5e35b1",
    happy: "#995c00", neutral: "#546e7a", sad: "#1565c0", surprised: "#ad1457",
  };
  let last = null; // { data, name }: what the download buttons save

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = false;
    $("status").textContent = "";
  }

  function pct(x) { return (100 * x).toFixed(1) + " %"; }

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
    draw(data, name, blob);
  }

  function drawBars(probabilities) {
    const bars = $("bars");
    bars.replaceChildren();
    const entries = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
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
  }

  function draw(data, name, blob) {
    last = { data, name };
    // An uncertain answer is shown as a short list, not one large label
    $("emotion").textContent = data.uncertain ? "Unsure:" : data.emotion;
    $("emotion").style.color = data.uncertain ? "inherit" : (LABEL_COLORS[data.emotion] || "inherit");
    $("confidence").textContent = data.uncertain
      ? data.top_k.map((t) => `${t.emotion} ${pct(t.probability)}`).join(", ")
      : `(${pct(data.confidence)} confidence)`;
    $("result").classList.toggle("uncertain", Boolean(data.uncertain));
    drawBars(data.probabilities);
    const segments = data.segments || [];
    // a long recording leads with its timeline; the whole answer follows
    $("result").classList.toggle("long", segments.length > 0);
    const what = data.segmentation === "speech" ? `${data.speech_s.toFixed(1)} s of speech` : "windows";
    $("agreement").textContent = segments.length
      ? `Over the whole recording (${Math.round(100 * data.agreement)} % of the ${what} agree):` : "";
    drawTimeline(segments, data.duration_s, blob);
    $("meta").textContent = `${name}: ${data.duration_s.toFixed(2)} s of audio · model ${data.model.name} ${data.model.version}`;
    $("result").hidden = false;
  }

  // The timeline: segments placed on a time axis that fits the width, silence in grey,
  // utterances coloured by emotion; a click plays that stretch of the recording.
  function niceStep(seconds) {
    for (const step of [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600]) if (seconds / step <= 8) return step;
    return 1200;
  }

  function drawTimeline(segments, duration, blob) {
    $("timeline-wrap").hidden = segments.length === 0;
    const timeline = $("timeline");
    timeline.replaceChildren();
    const player = $("player");
    if (player.src) URL.revokeObjectURL(player.src);
    player.removeAttribute("src");
    player.hidden = !blob;
    if (blob && segments.length) player.src = URL.createObjectURL(blob);
    const fixed = segments.length && segments[0].speech === undefined;
    segments.forEach((s, i) => {
      const block = document.createElement(s.speech === false ? "span" : "button");
      block.className = "segment" + (s.speech === false ? " silence" : "");
      block.setAttribute("role", "listitem");
      block.style.left = (100 * s.start / duration) + "%";
      block.style.width = (100 * (s.end - s.start) / duration) + "%";
      // overlapping fixed windows take alternate rows
      if (fixed) { block.style.top = (i % 2 ? 50 : 0) + "%"; block.style.height = "50%"; }
      if (s.speech === false) {
        block.title = `${s.start.toFixed(1)}–${s.end.toFixed(1)} s: silence`;
      } else {
        block.type = "button";
        block.style.background = LABEL_COLORS[s.emotion] || "#444";
        block.textContent = s.emotion;
        block.title = `${s.start.toFixed(1)}–${s.end.toFixed(1)} s: ${s.emotion} (${pct(s.confidence)})`;
        block.addEventListener("click", () => play(s.start, s.end));
      }
      block.setAttribute("aria-label", block.title);
      timeline.appendChild(block);
    });
    const head = document.createElement("span");
    head.className = "playhead";
    head.id = "playhead";
    timeline.appendChild(head);
    const axis = $("axis");
    axis.replaceChildren();
    const step = niceStep(duration);
    for (let t = 0; t <= duration + 1e-6; t += step) {
      const tick = document.createElement("span");
      tick.className = "tick";
      tick.style.left = (100 * t / duration) + "%";
      tick.textContent = t >= 60 ? `${Math.floor(t / 60)}:${String(Math.round(t % 60)).padStart(2, "0")}` : `${t} s`;
      axis.appendChild(tick);
    }
    const legend = $("legend");
    legend.replaceChildren();
    for (const emotion of [...new Set(segments.filter((s) => s.emotion).map((s) => s.emotion))]) {
      const item = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = LABEL_COLORS[emotion] || "#444";
      item.append(swatch, emotion);
      legend.appendChild(item);
    }
    last.duration = duration;
  }

  let stopAt = null;
  function play(start, end) {
    const player = $("player");
    if (!player.src) return;
    player.currentTime = start;
    stopAt = end;
    player.play().catch(() => {});
  }
  $("player").addEventListener("timeupdate", () => {
    const player = $("player");
    if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
    const head = $("playhead");
    if (head && last && last.duration) head.style.left = (100 * player.currentTime / last.duration) + "%";
  });

  function download(text, type, filename) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type }));
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 0);
  }
  const stem = () => (last.name || "result").replace(/\.[^.]*$/, "");
  $("download-json").addEventListener("click", () => {
    if (last) download(JSON.stringify(last.data, null, 1), "application/json", stem() + ".emotions.json");
  });
  $("download-csv").addEventListener("click", () => {
    if (!last) return;
    const labels = Object.keys(last.data.probabilities);
    const rows = [["start", "end", "speech", "emotion", "confidence", ...labels].join(",")];
    const segs = last.data.segments || [{ start: 0, end: last.data.duration_s, ...last.data }];
    for (const s of segs) {
      const p = s.probabilities || {};
      rows.push([s.start, s.end, s.speech === undefined ? "" : s.speech, s.emotion || "", s.confidence ?? "",
        ...labels.map((k) => p[k] ?? "")].join(","));
    }
    download(rows.join("\n") + "\n", "text/csv", stem() + ".emotions.csv");
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = $("audio-file").files[0];
    if (!file) { showError("Choose an audio file first."); return; }
    send(file, file.name);
  });

  // Drag and drop onto the upload panel
  form.addEventListener("dragover", (e) => { e.preventDefault(); form.classList.add("dragging"); });
  form.addEventListener("dragleave", () => form.classList.remove("dragging"));
  form.addEventListener("drop", (e) => {
    e.preventDefault();
    form.classList.remove("dragging");
    const file = e.dataTransfer.files[0];
    if (file) send(file, file.name);
  });

  async function microphone() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError("This browser cannot use the microphone here (it needs https or localhost).");
      return null;
    }
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false } });
    } catch (e) {
      showError("Microphone not available: " + e.message);
      return null;
    }
  }

  // Live: an AudioWorklet cuts the microphone into 0.1 s of 16-bit PCM, the WebSocket
  // /live answers every 0.5 s; when you stop, the utterances become the timeline.
  let live = null;

  function liveUrl() {
    const api = form.dataset.live || "/live";
    if (/^wss?:/.test(api)) return api;
    const base = new URL(api, location.href);
    base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    return base.href;
  }

  function stripBlock(reading) {
    const strip = $("strip");
    const block = document.createElement("span");
    block.className = "tick-block" + (reading.speech ? "" : " quiet");
    if (reading.emotion) block.style.background = reading.speech ? LABEL_COLORS[reading.emotion] : "";
    block.title = `${reading.t.toFixed(1)} s: ${reading.speech ? (reading.emotion || "…") : "silence"}`;
    strip.appendChild(block);
    while (strip.children.length > 60) strip.firstChild.remove();
    $("live-now").textContent = reading.emotion
      ? `${reading.speech ? "" : "last: "}${reading.emotion} ${pct(reading.confidence)}` : (reading.speech ? "listening…" : "silence");
    $("live-now").style.color = reading.speech && reading.emotion ? LABEL_COLORS[reading.emotion] : "";
  }

  async function startLive() {
    $("error").hidden = true;
    const stream = await microphone();
    if (!stream) return;
    const context = new AudioContext();
    try {
      await context.audioWorklet.addModule(WORKLET);
    } catch (e) {
      stream.getTracks().forEach((t) => t.stop());
      showError("This browser cannot process audio live (AudioWorklet): " + e.message);
      return;
    }
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "pcm-frames");
    const ws = new WebSocket(liveUrl());
    ws.binaryType = "arraybuffer";
    const utterances = [];
    let seconds = 0;
    live = { stream, context, node, ws };
    ws.onopen = () => ws.send(JSON.stringify({ type: "start", format: "s16le", sample_rate: context.sampleRate, channels: 1 }));
    ws.onmessage = (event) => {
      const m = JSON.parse(event.data);
      if (m.type === "ready") {
        source.connect(node);
        node.port.onmessage = (e) => {
          $("level-fill").style.width = Math.min(100, 300 * e.data.rms) + "%";
          if (ws.readyState === WebSocket.OPEN) ws.send(e.data.frame);
        };
        $("live-wrap").hidden = false;
        $("strip").replaceChildren();
        $("status").textContent = "Listening: speak, then press Stop.";
      } else if (m.type === "reading") {
        seconds = m.t;
        stripBlock(m);
      } else if (m.type === "utterance") {
        utterances.push(m);
      } else if (m.type === "error") {
        showError(`Live stream stopped: ${m.error.message}`);
      } else if (m.type === "end") {
        showUtterances(utterances, m.duration_s || seconds);
      }
    };
    ws.onerror = () => showError("Could not reach the live endpoint.");
    ws.onclose = () => { if (live && live.ws === ws) stopLive(false); };
    $("live").textContent = "Stop";
    $("live").setAttribute("aria-pressed", "true");
  }

  function stopLive(sendEnd = true) {
    if (!live) return;
    const { stream, context, node, ws } = live;
    live = null;
    node.port.onmessage = null;
    stream.getTracks().forEach((t) => t.stop());
    context.close();
    if (sendEnd && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "end" }));
    $("level-fill").style.width = "0";
    $("live").textContent = "Start live";
    $("live").setAttribute("aria-pressed", "false");
  }

  function showUtterances(utterances, duration) {
    $("status").textContent = utterances.length ? "Done." : "No speech heard.";
    if (!utterances.length) return;
    const segments = [];
    let t = 0;
    for (const u of utterances) {
      if (u.start - t >= 0.05) segments.push({ start: t, end: u.start, speech: false });
      segments.push({ ...u, speech: true });
      t = u.end;
    }
    if (duration - t >= 0.05) segments.push({ start: t, end: duration, speech: false });
    const total = utterances.reduce((a, u) => a + (u.end - u.start), 0);
    const mean = {};
    for (const k of Object.keys(utterances[0].probabilities)) {
      mean[k] = utterances.reduce((a, u) => a + u.probabilities[k] * (u.end - u.start), 0) / total;
    }
    const best = Object.entries(mean).sort((a, b) => b[1] - a[1]);
    const agree = utterances.filter((u) => u.emotion === best[0][0]).reduce((a, u) => a + (u.end - u.start), 0);
    draw({
      emotion: best[0][0], confidence: best[0][1], uncertain: false, probabilities: mean,
      top_k: best.slice(0, 3).map(([emotion, probability]) => ({ emotion, probability })),
      duration_s: duration, segmentation: "speech", speech_s: total, agreement: agree / total, segments,
      model: { name: "live", version: "" },
    }, "live recording", null);
    $("meta").textContent = `Live: ${duration.toFixed(1)} s of audio, ${utterances.length} utterance(s)`;
  }

  $("live").addEventListener("click", () => (live ? stopLive() : startLive()));

  // Record: the browser's own recorder and format (WebM/Opus in Chromium and Firefox,
  // MP4/AAC in Safari), uploaded as it is when you stop.
  let recording = null;
  const MAX_SECONDS = 30;

  async function startRecording() {
    if (!window.MediaRecorder) { showError("This browser cannot record audio."); return; }
    const stream = await microphone();
    if (!stream) return;
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
