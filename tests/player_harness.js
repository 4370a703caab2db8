// One page, three players: hls.js, Shaka Player and video.js (VHS) behind one small interface,
// and a probe that times what the viewer sees and hears (tests/test_players.py drives it).
//
//   const p = await harness.open("shaka", masterUrl);
//   p.audio() -> [{lang, name}]   p.active() -> lang   p.select(lang)
//   p.subtitles() -> [{lang, name}]   p.showSubtitles(lang)   p.cues(lang) -> [[start, end, text]]
//   await harness.sync(seconds) -> {flashes: [...], clicks: [...]}
"use strict";

const video = document.querySelector("video");

// The cues a page's native TextTracks hold for a language (hls.js and Shaka render there).
const nativeCues = (tracks, lang) => Array.from(tracks)
  .filter((t) => t.language === lang && t.cues)
  .flatMap((t) => Array.from(t.cues, (c) => [c.startTime, c.endTime, c.text]));

const players = {
  async hlsjs(url) {
    const hls = new Hls();
    await new Promise((resolve, reject) => {
      hls.on(Hls.Events.MANIFEST_PARSED, resolve);
      hls.on(Hls.Events.ERROR, (_e, data) => data.fatal && reject(new Error(data.details)));
      hls.loadSource(url);
      hls.attachMedia(video);
    });
    const index = (tracks, lang) => tracks.findIndex((t) => t.lang === lang);
    return {
      audio: () => hls.audioTracks.map((t) => ({lang: t.lang, name: t.name})),
      active: () => (hls.audioTracks[hls.audioTrack] || {}).lang,
      select: (lang) => { hls.audioTrack = index(hls.audioTracks, lang); },
      subtitles: () => hls.subtitleTracks.map((t) => ({lang: t.lang, name: t.name})),
      showSubtitles: (lang) => {
        hls.subtitleDisplay = true;
        hls.subtitleTrack = index(hls.subtitleTracks, lang);
      },
      cues: (lang) => nativeCues(video.textTracks, lang),
    };
  },

  async shaka(url) {
    shaka.polyfill.installAll();
    const player = new shaka.Player();
    await player.attach(video);
    await player.load(url);
    const tracks = () => player.getAudioTracks();
    const texts = () => player.getTextTracks();
    return {
      audio: () => tracks().map((t) => ({lang: t.language, name: t.label})),
      active: () => (tracks().find((t) => t.active) || {}).language,
      select: (lang) => player.selectAudioTrack(tracks().find((t) => t.language === lang)),
      subtitles: () => texts().map((t) => ({lang: t.language, name: t.label})),
      showSubtitles: (lang) => player.selectTextTrack(texts().find((t) => t.language === lang)),
      cues: (lang) => nativeCues(video.textTracks, lang),
    };
  },

  async videojs(url) {
    const player = videojs(video, {
      html5: {vhs: {overrideNative: true}, nativeAudioTracks: false, nativeTextTracks: false},
    });
    await new Promise((resolve, reject) => {
      player.one("loadedmetadata", resolve);
      player.one("error", () => reject(new Error(JSON.stringify(player.error()))));
      player.src({src: url, type: "application/x-mpegURL"});
    });
    const audio = () => Array.from(player.audioTracks());
    const subtitles = () => Array.from(player.textTracks()).filter((t) => t.kind === "subtitles");
    return {
      audio: () => audio().map((t) => ({lang: t.language, name: t.label})),
      active: () => (audio().find((t) => t.enabled) || {}).language,
      select: (lang) => { audio().find((t) => t.language === lang).enabled = true; },
      subtitles: () => subtitles().map((t) => ({lang: t.language, name: t.label})),
      showSubtitles: (lang) => {
        for (const t of subtitles()) t.mode = t.language === lang ? "showing" : "disabled";
      },
      // video.js keeps its own (emulated) text tracks, not the element's.
      cues: (lang) => nativeCues(subtitles(), lang),
    };
  },
};

// Both on the media clock (the timeline currentTime runs on), which is what lip sync means.
// Flashes: every frame the compositor presents is drawn to a tiny canvas; a white one is a
// flash at its presentation timestamp (requestVideoFrameCallback's mediaTime).
// Clicks: an AudioWorklet on the element's output finds each onset that goes on at 4 kHz for
// 5 ms, and the pitch of the bed just before it (zero crossings: which language is playing),
// timed by the media
// clock at the moment the worklet processed that sample (currentTime, sampled against
// performance.now() every frame). WebAudio's own output latency, after that, is the tap's and
// not the stream's, so it is left out.
const WORKLET = `
class Clicks extends AudioWorkletProcessor {
  constructor() {
    super();
    this.prev = 0;
    this.quiet = 0;
    this.crossings = [];
    this.onset = null;
    this.burst = Math.round(sampleRate * 0.004);  // looked at after an onset: the click is 5 ms
  }
  process(inputs) {
    const input = inputs[0][0];
    if (!input) return true;
    for (let i = 0; i < input.length; i++) {
      const frame = currentFrame + i;
      if ((input[i] >= 0) !== (this.prev >= 0)) this.crossings.push(frame);
      const high = input[i] - this.prev;  // first difference: 4 kHz passes, the bed barely
      this.prev = input[i];
      if (this.onset) {  // a click is 4 kHz throughout; a glitch (a track switch) is not
        const o = this.onset;
        if ((high >= 0) !== o.sign) o.turns += 1;
        o.sign = high >= 0;
        if (++o.seen === this.burst) {
          const pitch = o.turns / 2 / (this.burst / sampleRate);
          if (pitch > 3000 && pitch < 5000) this.port.postMessage({at: o.at, hz: o.hz});
          this.onset = null;
        }
      }
      if (Math.abs(high) > 0.03) {
        if (this.quiet > sampleRate / 10 && !this.onset) {
          const window = sampleRate / 20;
          const recent = this.crossings.filter((f) => f > frame - window).length;
          this.onset = {at: frame / sampleRate, hz: recent / 2 / (window / sampleRate),
                        sign: high >= 0, turns: 0, seen: 0};
        }
        this.quiet = 0;
      } else {
        this.quiet += 1;
      }
    }
    this.crossings = this.crossings.filter((f) => f > currentFrame - sampleRate);
    return true;
  }
}
registerProcessor("clicks", Clicks);`;

let audioContext = null;
const heard = [];

async function listen() {
  if (audioContext) return;
  audioContext = new AudioContext({latencyHint: "interactive"});
  const blob = new Blob([WORKLET], {type: "application/javascript"});
  await audioContext.audioWorklet.addModule(URL.createObjectURL(blob));
  const node = new AudioWorkletNode(audioContext, "clicks");
  audioContext.createMediaElementSource(video).connect(node);
  node.connect(audioContext.destination);
  node.port.onmessage = ({data}) => {
    // When the worklet processed the click, on the performance.now() clock.
    const wall = performance.now() - (audioContext.currentTime - data.at) * 1000;
    heard.push({wall, hz: data.hz});
  };
}

// The media time at a performance.now() instant: a line through the clock samples near it.
function mediaAt(clock, wall) {
  const near = clock.filter(([w]) => Math.abs(w - wall) < 400);
  const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;
  const w0 = mean(near.map(([w]) => w));
  const m0 = mean(near.map(([, m]) => m));
  const slope = mean(near.map(([w, m]) => (w - w0) * (m - m0)))
    / mean(near.map(([w]) => (w - w0) ** 2));
  return m0 + slope * (wall - w0);
}

const canvas = document.createElement("canvas");
canvas.width = canvas.height = 8;
const pen = canvas.getContext("2d", {willReadFrequently: true});

function brightness() {
  pen.drawImage(video, 0, 0, 8, 8);
  const pixels = pen.getImageData(0, 0, 8, 8).data;
  let sum = 0;
  for (let i = 0; i < pixels.length; i += 4) sum += pixels[i] + pixels[i + 1] + pixels[i + 2];
  return sum / (pixels.length / 4) / 3;
}

window.harness = {
  async open(kind, url) {
    await listen();
    this.player = await players[kind](url);
    return this.player;
  },

  // Plays for `seconds` from now: the media times of the flashes seen and of the clicks heard
  // (with the pitch of the bed each was heard over).
  sync(seconds) {
    return new Promise((resolve) => {
      const flashes = [];
      const clock = [];
      const start = performance.now();
      heard.length = 0;
      const tick = () => {
        clock.push([performance.now(), video.currentTime]);
        if (performance.now() - start < seconds * 1000) requestAnimationFrame(tick);
      };
      tick();
      const frame = (now, meta) => {
        if (brightness() > 200) flashes.push(meta.mediaTime);
        if (now - start < seconds * 1000) {
          video.requestVideoFrameCallback(frame);
        } else {
          const settled = heard.filter(({wall}) => wall < clock[clock.length - 1][0] - 100);
          resolve({flashes, clicks: settled.map(({wall, hz}) => ({at: mediaAt(clock, wall), hz}))});
        }
      };
      video.requestVideoFrameCallback(frame);
      video.play();
    });
  },
};
