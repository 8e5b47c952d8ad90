// AudioWorklet for the demo's Live mode: the microphone's samples as 16-bit PCM, about
// 0.1 s per message, with the level (RMS) of each message for the meter.
"use strict";
class PcmFrames extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.round(sampleRate / 10);
    this.buffer = new Int16Array(this.size);
    this.filled = 0;
    this.energy = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const x = Math.max(-1, Math.min(1, channel[i]));
      this.buffer[this.filled++] = x * 32767;
      this.energy += x * x;
      if (this.filled === this.size) {
        const frame = this.buffer.slice().buffer;
        this.port.postMessage({ frame, rms: Math.sqrt(this.energy / this.size) }, [frame]);
        this.filled = 0;
        this.energy = 0;
      }
    }
    return true;
  }
}
registerProcessor("pcm-frames", PcmFrames);
