"""The browser's microphone and speaker, for kernels without a sound card (JupyterHub, Codespaces).

Two anywidget widgets; display them (or let :class:`~voicelive_nb.widgets.panel.SessionPanel`
display them) and click *Start microphone* once: browsers only open a microphone and start
audio after a user gesture.

- :class:`BrowserMicrophone` (an :class:`~voicelive_nb.audio.base.AudioSource`):
  ``getUserMedia`` (``echo_cancellation``, ``noise_suppression``, ``auto_gain_control``) →
  an AudioWorklet → PCM16 chunks of ``chunk_ms`` (20–100 ms) at ``sample_rate`` → the widget
  comm as binary buffers (``{"type": "pcm", "stream", "seq", "t", "rate"}`` + one buffer).
  The comm delivers them on the kernel's main thread; they are handed to the event loop of
  ``frames()`` with ``loop.call_soon_threadsafe`` and resampled there when the browser could
  not capture at the session rate (Firefox captures at the device rate).
- :class:`BrowserSpeaker` (an :class:`~voicelive_nb.audio.base.AudioSink`): ``write`` sends
  PCM16 to the page, where an AudioWorklet plays it through a jitter buffer (``jitter_ms``,
  or at once after :meth:`~BrowserSpeaker.end_of_item`). ``clear`` (barge-in) tells the page
  to flush at once; the page reports the frames it has handed to the audio output every
  ``report_ms`` and at each flush, and ``played_ms(item_id)`` maps them back to items with a
  :class:`~voicelive_nb.audio.buffers.PlayoutTracker`.

Client-reference echo cancellation: ``mic.attach_reference(speaker)`` (a :class:`BrowserSpeaker`
shown in the same page). The page then builds the microphone's capture graph in the speaker's
AudioContext and connects the speaker's playback node to the capture worklet as a second input:
the worklet reads both in the same render quantum and sends stereo chunks (channel 0 the
microphone, channel 1 what the page played at that context frame), with the context frame of
their first sample. No clock is translated, so the alignment is exact by construction (measured
0 samples in Chromium, tests/test_browser_echo_reference.py). The page follows the speaker's
context (started later, stopped, restarted at another rate); where it cannot tap it (speaker not
in this page, not playing, a browser that cannot join the contexts) it captures mono and says why
in ``reference_state``. :meth:`BrowserMicrophone.reference_frames` yields stereo frames (channel 1
silence for mono chunks), ``frames()`` channel 0.

Exactness of ``played_ms``: it is what the page has *confirmed* (never more than was played);
it lags the page by at most ``report_ms`` plus the comm transit (~3 ms locally). The page's
flush report says how much more had played when the flush arrived (``last_flush``), so the
truncation error of each barge-in is measured, not guessed.

States shown in the widgets (``state`` trait, set by the page): microphone ``idle``,
``requesting``, ``capturing``, ``denied``, ``no-device``, ``ended`` (device unplugged),
``error``, ``stopped``, ``kernel-gone``; speaker ``idle`` (waiting for a click), ``running``,
``suspended``, ``error``, ``stopped``, ``kernel-gone``. ``page_visible`` follows the tab's
visibility. When the kernel restarts (JupyterLab marks the page's models not live; it does
not close them), both widgets go to ``kernel-gone`` at once, whatever their state, and
release the microphone and the AudioContext (as when the models are closed). Nothing on the
kernel side waits for the page: ``frames()`` simply yields nothing until chunks arrive (so
also after ``denied`` / ``no-device``) and ends on ``aclose()``; ``write`` never blocks.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anywidget
import numpy as np
import traitlets as T

from ..errors import AudioError, ConfigError
from .buffers import PlayoutTracker, interleave
from .format import StreamResampler, rms_dbfs

__all__ = ["MIC_STATES", "SPEAKER_STATES", "BrowserMicrophone", "BrowserSpeaker", "SpeakerWidget"]

MIC_STATES = (
    "idle",
    "requesting",
    "capturing",
    "denied",
    "no-device",
    "ended",
    "error",
    "stopped",
    "kernel-gone",
)
SPEAKER_STATES = ("idle", "running", "suspended", "error", "stopped", "kernel-gone")

#: Speaker states in which the page plays (or is about to play) what the kernel sends.
_PLAYING_STATES = ("running", "suspended")
#: Longest silence inserted for a sequence gap (a bigger gap is a new stream, not lost chunks).
_MAX_GAP_FILL_S = 2.0

_CAPTURE_WORKLET = r"""
// Mono: input 0 (the microphone, mixed down) -> PCM16 chunks. Stereo (client echo reference):
// input 1 is the page's playback node, pulled in the same render quantum as the microphone, so
// sample i of both channels belongs to the same context frame: (mic, played) interleaved.
class VlnbCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.chunk = o.chunk; this.stereo = !!o.stereo; this.width = this.stereo ? 2 : 1;
    this.buf = new Int16Array(this.chunk * this.width);
    this.n = 0; this.frame = 0;
  }
  static pcm(s) { s = s < -1 ? -1 : s > 1 ? 1 : s; return s < 0 ? s * 0x8000 : s * 0x7fff; }
  static mix(input, i) {
    const ch = input ? input.length : 0;
    if (ch === 0) return 0;
    let s = 0;
    for (let c = 0; c < ch; c++) s += input[c][i];
    return s / ch;
  }
  process(inputs) {
    const mic = inputs[0];
    if (!this.stereo && (!mic || mic.length === 0)) return true;
    const ref = this.stereo ? inputs[1] : null;
    const len = mic && mic.length ? mic[0].length : ref && ref.length ? ref[0].length : 128;
    const w = this.width;
    for (let i = 0; i < len; i++) {
      if (this.n === 0) this.frame = currentFrame + i;
      this.buf[this.n * w] = VlnbCapture.pcm(VlnbCapture.mix(mic, i));
      if (w === 2) this.buf[this.n * 2 + 1] = VlnbCapture.pcm(VlnbCapture.mix(ref, i));
      if (++this.n === this.chunk) {
        this.port.postMessage({ pcm: this.buf.buffer, frame: this.frame }, [this.buf.buffer]);
        this.buf = new Int16Array(this.chunk * w);
        this.n = 0;
      }
    }
    return true;
  }
}
registerProcessor('vlnb-capture', VlnbCapture);
"""

_PLAYBACK_WORKLET = r"""
class VlnbPlayback extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.jitter = o.jitter; this.reportEvery = o.report;
    this.queue = []; this.head = 0; this.queued = 0;
    this.gate = false; this.ending = false; this.outputting = false;
    this.epoch = o.epoch; this.played = 0; this.sinceReport = 0; this.underruns = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }
  report(type, extra) {
    this.port.postMessage(Object.assign({type, epoch: this.epoch, played: this.played,
      queued: this.queued, underruns: this.underruns}, extra || {}));
    this.sinceReport = 0;
  }
  onMessage(m) {
    if (m.type === 'audio') {
      if (m.epoch !== this.epoch) return;  // sent before a flush the page already did
      const pcm = new Int16Array(m.pcm);
      const f = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) f[i] = pcm[i] / 32768;
      this.queue.push(f); this.queued += f.length; this.ending = false;
      if (!this.gate && this.queued >= this.jitter) this.gate = true;
    } else if (m.type === 'end') {
      this.ending = true;
      if (this.queued > 0) this.gate = true;
    } else if (m.type === 'clear') {
      const dropped = this.queued, before = this.played, old = this.epoch;
      this.queue = []; this.head = 0; this.queued = 0; this.gate = false; this.ending = false;
      this.outputting = false; this.epoch = m.epoch; this.played = 0;
      this.report('flushed', {dropped, prev_epoch: old, prev_played: before});
    } else if (m.type === 'config') {
      this.jitter = m.jitter; this.reportEvery = m.report;
    }
  }
  process(inputs, outputs) {
    const out = outputs[0][0];
    const n = out.length;
    let k = 0;
    if (this.gate) {
      while (k < n && this.queue.length) {
        const f = this.queue[0];
        const take = Math.min(n - k, f.length - this.head);
        out.set(f.subarray(this.head, this.head + take), k);
        k += take; this.head += take;
        if (this.head === f.length) { this.queue.shift(); this.head = 0; }
      }
      if (k > 0 && !this.outputting) {  // a burst starts at frame currentFrame (offset 0 of this quantum)
        this.port.postMessage({type: 'started', epoch: this.epoch, played: this.played, frame: currentFrame,
          rate: sampleRate});
      }
      this.outputting = k === n;
      this.queued -= k; this.played += k; this.sinceReport += k;
      if (k < n) {
        this.gate = false;
        if (!this.ending) this.underruns++;
        this.report('played');
      } else if (this.sinceReport >= this.reportEvery) {
        this.report('played');
      }
    } else {
      this.outputting = false;
    }
    for (let i = k; i < n; i++) out[i] = 0;
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}
registerProcessor('vlnb-playback', VlnbPlayback);
"""

_MIC_ESM = (
    "const WORKLET = "
    + json.dumps(_CAPTURE_WORKLET)
    + r""";
const LABELS = {idle: 'microphone off', requesting: 'asking for the microphone…',
  capturing: 'microphone on', denied: 'microphone permission denied',
  'no-device': 'no microphone found', ended: 'microphone disconnected',
  error: 'microphone error', stopped: 'microphone stopped', 'kernel-gone': 'kernel gone: microphone released'};

// The model given to render() is not the object given to initialize(): share the page-side
// state through a per-widget id.
const STATES = new Map();

// The page's speakers (BrowserSpeaker widgets), by id: the echo reference is the playback node of
// one of them, and the microphone then captures in that speaker's AudioContext.
const SPEAKERS = globalThis.__vlnbSpeakers || (globalThis.__vlnbSpeakers = new Map());
// Contexts that already have the capture processor registered (registering twice throws).
const WITH_WORKLET = new WeakSet();

async function addWorklet(ctx) {
  if (WITH_WORKLET.has(ctx)) return;
  const url = URL.createObjectURL(new Blob([WORKLET], { type: 'text/javascript' }));
  try { await ctx.audioWorklet.addModule(url); } finally { URL.revokeObjectURL(url); }
  WITH_WORKLET.add(ctx);
}

function initialize({ model }) {
  // graph: what build() made for the current stream {ctx, own, source, node, mute, tap}
  const st = { stream: null, graph: null, gen: 0, seq: 0, streamId: 0, sent: 0, speaker: null };
  STATES.set(model.get('_vlnb_id'), st);
  const setState = (state, error) => {
    model.set('state', state);
    if (error !== undefined) model.set('error', error);
    try { model.save_changes(); } catch (e) { /* the comm is gone */ }
  };
  const setReference = (text) => {
    if (model.get('reference_state') === text) return;
    model.set('reference_state', text);
    try { model.save_changes(); } catch (e) {}
  };
  const teardown = () => {
    const g = st.graph;
    st.graph = null;
    if (!g) return;
    for (const n of [g.source, g.node, g.mute]) { try { n.disconnect(); } catch (e) {} }
    if (g.tap) { try { g.tap.disconnect(g.node); } catch (e) {} }
    if (g.own) g.ctx.close().catch(() => {});
  };
  const ownContext = async (stream) => {
    let ctx = new AudioContext({ sampleRate: model.get('sample_rate') });
    try { return [ctx, ctx.createMediaStreamSource(stream)]; } catch (e) {
      // Firefox cannot connect a stream to a context of another rate: capture at the
      // device rate, the kernel resamples.
      await ctx.close();
      ctx = new AudioContext();
      return [ctx, ctx.createMediaStreamSource(stream)];
    }
  };
  // (Re)build the capture graph of st.stream: in the attached speaker's context with its
  // playback as input 1 when there is one, else in a context of our own (mono).
  const build = async () => {
    const gen = ++st.gen, stream = st.stream;
    teardown();
    const refId = model.get('reference_speaker');
    follow();
    const sp = refId ? SPEAKERS.get(refId) : null;
    let missing = '';
    if (refId && !sp) missing = 'missing: the speaker widget is not displayed in this page';
    else if (sp && !sp.ctx) {
      await sp.start();  // the click that started the microphone lets the speaker start too
      if (gen !== st.gen) return;
      if (!sp.ctx) missing = 'missing: the speaker is not playing';
    }
    let ctx = null, source = null, own = true;
    if (sp && sp.ctx && sp.node) {
      try { source = sp.ctx.createMediaStreamSource(stream); ctx = sp.ctx; own = false; } catch (e) {
        missing = `missing: ${e && e.name}: the microphone cannot join the speaker's audio context`;
      }
    }
    if (!ctx) [ctx, source] = await ownContext(stream);
    await addWorklet(ctx);
    if (gen !== st.gen || st.stream !== stream) { if (own) ctx.close().catch(() => {}); return; }
    const stereo = !own;
    const chunk = Math.max(1, Math.round(ctx.sampleRate * model.get('chunk_ms') / 1000));
    const node = new AudioWorkletNode(ctx, 'vlnb-capture', { numberOfInputs: stereo ? 2 : 1, numberOfOutputs: 1,
      outputChannelCount: [1], processorOptions: { chunk, stereo } });
    const mute = ctx.createGain(); mute.gain.value = 0;
    source.connect(node, 0, 0); node.connect(mute); mute.connect(ctx.destination);
    const tap = stereo ? sp.node : null;
    if (tap) tap.connect(node, 0, 1);
    st.graph = { ctx, own, source, node, mute, tap };
    st.speaker = sp;
    st.streamId += 1; st.seq = 0;
    const streamId = st.streamId, ctxRate = ctx.sampleRate, channels = stereo ? 2 : 1;
    node.port.onmessage = (e) => {
      if (!st.stream || !st.graph || st.graph.node !== node) return;
      try {
        model.send({ type: 'pcm', stream: streamId, seq: st.seq++, t: performance.timeOrigin + performance.now(),
          rate: ctxRate, channels, frame: e.data.frame }, undefined, [e.data.pcm]);
        st.sent += 1;
      } catch (err) { stop('kernel-gone'); }
    };
    if (ctx.state !== 'running') await ctx.resume();
    model.set('context_rate', ctxRate);
    setReference(stereo ? 'tapped' : refId ? missing : '');
  };
  // The speaker's context came or went (started, stopped, restarted at another rate): follow it.
  const onSpeakerContext = () => {
    if (!st.stream) return;
    const g = st.graph, sp = st.speaker;
    if (g && !g.own && sp && sp.ctx === g.ctx && sp.node === g.tap) return;
    if (g && g.own && !(sp && sp.ctx)) return;
    build().catch((e) => setState('error', `${e && e.name}: ${e && e.message}`));
  };
  const follow = () => {
    for (const sp of SPEAKERS.values()) sp.contextListeners.delete(onSpeakerContext);
    const sp = SPEAKERS.get(model.get('reference_speaker'));
    if (sp) sp.contextListeners.add(onSpeakerContext);
  };
  const stop = async (state) => {
    const stream = st.stream;
    st.stream = null; st.gen += 1;
    teardown();
    if (stream) stream.getTracks().forEach((t) => t.stop());
    if (state) setState(state);
  };
  st.stop = stop;
  st.start = async () => {
    if (st.stream) return;
    setState('requesting', '');
    let stream;
    try {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw Object.assign(new Error('getUserMedia is not available (an insecure http:// page?)'), { name: 'NotSupportedError' });
      }
      stream = await navigator.mediaDevices.getUserMedia({ audio: {
        echoCancellation: model.get('echo_cancellation'), noiseSuppression: model.get('noise_suppression'),
        autoGainControl: model.get('auto_gain_control'), channelCount: 1 } });
    } catch (e) {
      const name = e && e.name;
      const state = (name === 'NotAllowedError' || name === 'SecurityError') ? 'denied'
        : (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'NotReadableError') ? 'no-device' : 'error';
      setState(state, `${name}: ${e && e.message}`);
      return;
    }
    try {
      st.stream = stream;
      await build();
      if (st.stream !== stream) return;
      stream.getAudioTracks().forEach((t) => { t.onended = () => { if (st.stream === stream) stop('ended'); }; });
      const track = stream.getAudioTracks()[0];
      model.set('device_label', track ? track.label : '');
      setState('capturing', '');
    } catch (e) {
      if (st.stream === stream) { st.stream = null; teardown(); }
      stream.getTracks().forEach((t) => t.stop());
      setState('error', `${e && e.name}: ${e && e.message}`);
    }
  };
  model.on('change:reference_speaker', () => {
    follow();
    if (st.stream) build().catch((e) => setState('error', `${e && e.name}: ${e && e.message}`));
  });
  const onVisibility = () => { model.set('page_visible', !document.hidden); try { model.save_changes(); } catch (e) {} };
  document.addEventListener('visibilitychange', onVisibility);
  onVisibility();
  model.on('msg:custom', (m) => {
    if (m && m.type === 'stop') stop('stopped');
    // the panel's Start (a click in this page: the user gesture a microphone needs)
    else if (m && m.type === 'start') st.start();
  });
  // Kernel restart or death: the widget manager marks the model not live (it does not close
  // it). Release the microphone now, not only at the next chunk that fails to send.
  model.on('comm_live_update', () => stop('kernel-gone'));
  return () => {  // the model is closed (widget closed, kernel changed): release everything
    STATES.delete(model.get('_vlnb_id'));
    for (const sp of SPEAKERS.values()) sp.contextListeners.delete(onSpeakerContext);
    document.removeEventListener('visibilitychange', onVisibility);
    const stream = st.stream;
    st.stream = null; st.gen += 1;
    teardown();
    if (stream) stream.getTracks().forEach((t) => t.stop());
  };
}

function render({ model, el }) {
  const st = STATES.get(model.get('_vlnb_id'));
  el.classList.add('vlnb-browser-mic');
  const button = document.createElement('button');
  button.className = 'vlnb-mic-button jupyter-button';
  const status = document.createElement('span');
  status.className = 'vlnb-mic-status';
  status.style.marginLeft = '8px';
  const update = () => {
    const state = model.get('state');
    const on = state === 'capturing' || state === 'requesting';
    button.textContent = on ? 'Stop microphone' : 'Start microphone';
    button.disabled = state === 'requesting' || state === 'kernel-gone';
    let text = LABELS[state] || state;
    if (state === 'capturing') text += ` (${model.get('device_label') || 'default'}, ${model.get('context_rate')} Hz)`;
    const ref = model.get('reference_state');
    if (state === 'capturing' && ref) text += ref === 'tapped' ? ' · echo reference: the speaker' : ` · echo reference ${ref}`;
    status.dataset.reference = ref;
    if (!model.get('page_visible')) text += ' · tab hidden';
    const err = model.get('error');
    if (err && state !== 'capturing') text += ` — ${err}`;
    status.textContent = text;
    status.dataset.state = state;
    el.dataset.state = state;
  };
  button.addEventListener('click', () => {
    const state = model.get('state');
    if (state === 'capturing') st.stop('stopped'); else st.start();
  });
  model.on('change:state', update);
  model.on('change:page_visible', update);
  model.on('change:error', update);
  model.on('change:reference_state', update);
  update();
  el.append(button, status);
  return () => {
    model.off('change:state', update); model.off('change:page_visible', update); model.off('change:error', update);
    model.off('change:reference_state', update);
  };
}

export default { initialize, render };
"""
)

_SPEAKER_ESM = (
    "const WORKLET = "
    + json.dumps(_PLAYBACK_WORKLET)
    + r""";
const LABELS = {idle: 'speaker: click anywhere on the page to enable sound', running: 'speaker on',
  suspended: 'speaker suspended', error: 'speaker error', stopped: 'speaker off', 'kernel-gone': 'kernel gone'};

// The model given to render() is not the object given to initialize(): share the page-side
// state through a per-widget id.
const STATES = new Map();
// Shared with the microphone widget's module: a microphone with this speaker as its echo
// reference captures in this speaker's AudioContext and taps its playback node.
const SPEAKERS = globalThis.__vlnbSpeakers || (globalThis.__vlnbSpeakers = new Map());

function initialize({ model }) {
  const st = { ctx: null, node: null, pending: [], epoch: 0, played: 0, queued: 0, flushes: 0,
    underruns: 0, starting: null, listeners: new Set(), contextListeners: new Set() };
  STATES.set(model.get('_vlnb_id'), st);
  SPEAKERS.set(model.get('_vlnb_id'), st);
  const contextChanged = () => st.contextListeners.forEach((f) => { try { f(); } catch (e) {} });
  const save = () => { try { model.save_changes(); } catch (e) {} };
  const setState = (state, error) => {
    model.set('state', state);
    if (error !== undefined) model.set('error', error);
    save();
  };
  const tell = (m) => {
    try { model.send(m); } catch (e) { /* the comm is gone */ }
  };
  const notify = () => st.listeners.forEach((f) => f());
  const post = (m, transfer) => { if (st.node) st.node.port.postMessage(m, transfer || []); else st.pending.push([m, transfer]); };
  const jitterFrames = (rate) => Math.round(rate * model.get('jitter_ms') / 1000);
  const reportFrames = (rate) => Math.max(128, Math.round(rate * model.get('report_ms') / 1000));
  const start = async () => {
    if (st.ctx || st.starting) return st.starting;
    st.starting = (async () => {
      try {
        const rate = model.get('sample_rate');
        const ctx = new AudioContext({ sampleRate: rate, latencyHint: 'interactive' });
        const url = URL.createObjectURL(new Blob([WORKLET], { type: 'text/javascript' }));
        try { await ctx.audioWorklet.addModule(url); } finally { URL.revokeObjectURL(url); }
        const node = new AudioWorkletNode(ctx, 'vlnb-playback', { numberOfInputs: 0, numberOfOutputs: 1,
          outputChannelCount: [1], processorOptions: { jitter: jitterFrames(rate), report: reportFrames(rate), epoch: st.epoch } });
        node.connect(ctx.destination);
        node.port.onmessage = (e) => {
          const m = e.data;
          st.played = m.played; st.queued = m.queued; st.underruns = m.underruns;
          if (m.type === 'flushed') st.flushes += 1;
          tell(Object.assign({ t: performance.timeOrigin + performance.now() }, m));
          notify();
        };
        ctx.onstatechange = () => {
          if (st.ctx === ctx) setState(ctx.state === 'running' ? 'running' : ctx.state === 'closed' ? 'stopped' : 'suspended');
        };
        st.ctx = ctx; st.node = node;
        for (const [m, transfer] of st.pending) node.port.postMessage(m, transfer || []);
        st.pending = [];
        if (ctx.state !== 'running') await ctx.resume();
        model.set('context_rate', ctx.sampleRate);
        setState(ctx.state === 'running' ? 'running' : 'suspended', '');
        contextChanged();
      } catch (e) {
        setState('error', `${e && e.name}: ${e && e.message}`);
      } finally {
        st.starting = null;
        notify();
      }
    })();
    return st.starting;
  };
  const stop = async (state) => {
    const ctx = st.ctx;
    st.ctx = null; st.node = null;
    if (ctx) { try { await ctx.close(); } catch (e) {} }
    if (state) setState(state);
    notify();
    if (ctx) contextChanged();
  };
  st.start = start; st.stop = stop;
  // Audio needs a user gesture: start at the first click anywhere on the page (the microphone's
  // Start button is one), or at once when the page already had one.
  const onGesture = () => { if (model.get('state') === 'idle') start(); };
  document.addEventListener('pointerdown', onGesture, true);
  document.addEventListener('keydown', onGesture, true);
  if (navigator.userActivation && navigator.userActivation.hasBeenActive) start();
  model.on('change:sample_rate', async () => {
    if (st.ctx && st.ctx.sampleRate !== model.get('sample_rate')) { await stop(); await start(); }
  });
  model.on('change:jitter_ms', () => post({ type: 'config', jitter: jitterFrames(model.get('sample_rate')), report: reportFrames(model.get('sample_rate')) }));
  model.on('msg:custom', (m, buffers) => {
    if (!m) return;
    if (m.type === 'audio' && buffers && buffers.length) {
      const b = buffers[0];
      const copy = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
      post({ type: 'audio', epoch: m.epoch, pcm: copy }, [copy]);
    } else if (m.type === 'clear') {
      st.epoch = m.epoch;
      if (st.node) st.node.port.postMessage({ type: 'clear', epoch: m.epoch });
      else {  // not playing yet: drop what waits and report the flush ourselves
        const dropped = st.pending.length; st.pending = []; st.flushes += 1; st.queued = 0;
        tell({ type: 'flushed', epoch: m.epoch, prev_epoch: m.epoch - 1, prev_played: st.played, dropped, played: 0, queued: 0, underruns: st.underruns });
        st.played = 0; notify();
      }
    } else if (m.type === 'end') {
      post({ type: 'end' });
    } else if (m.type === 'stop') {
      stop('stopped');
    }
  });
  // Kernel restart or death (the model is marked not live, not closed): close the AudioContext.
  model.on('comm_live_update', () => stop('kernel-gone'));
  return () => {  // the model is closed (widget closed, kernel changed): release everything
    STATES.delete(model.get('_vlnb_id'));
    SPEAKERS.delete(model.get('_vlnb_id'));
    document.removeEventListener('pointerdown', onGesture, true);
    document.removeEventListener('keydown', onGesture, true);
    const ctx = st.ctx; st.ctx = null; st.node = null;
    if (ctx) { ctx.close().catch(() => {}); contextChanged(); }
  };
}

function render({ model, el }) {
  const st = STATES.get(model.get('_vlnb_id'));
  el.classList.add('vlnb-browser-speaker');
  const button = document.createElement('button');
  button.className = 'vlnb-speaker-button jupyter-button';
  const status = document.createElement('span');
  status.className = 'vlnb-speaker-status';
  status.style.marginLeft = '8px';
  const update = () => {
    const state = model.get('state');
    const rate = st.ctx ? st.ctx.sampleRate : model.get('sample_rate');
    button.textContent = state === 'running' || state === 'suspended' ? 'Stop speaker' : 'Start speaker';
    button.disabled = state === 'kernel-gone';
    const err = model.get('error');
    status.textContent = `${LABELS[state] || state}${err && state === 'error' ? ' — ' + err : ''} · played ${Math.floor(st.played * 1000 / rate)} ms`
      + ` · queued ${Math.floor(st.queued * 1000 / rate)} ms · flushes ${st.flushes} · underruns ${st.underruns}`;
    status.dataset.state = state;
    status.dataset.played = String(st.played);
    status.dataset.queued = String(st.queued);
    status.dataset.flushes = String(st.flushes);
    el.dataset.state = state;
  };
  button.addEventListener('click', (e) => {
    e.stopPropagation();
    const state = model.get('state');
    if (state === 'running' || state === 'suspended') st.stop('stopped'); else st.start();
  });
  st.listeners.add(update);
  model.on('change:state', update);
  model.on('change:error', update);
  update();
  el.append(button, status);
  return () => { st.listeners.delete(update); model.off('change:state', update); model.off('change:error', update); };
}

export default { initialize, render };
"""
)


#: A chunk on its way from the comm to ``frames()``: (PCM16 bytes, page rate, arrival time,
#: channels, the page's AudioContext frame of its first sample when it starts a capture graph).
_Chunk = tuple[bytes, int, float, int, int | None]


def _split(data: bytes, channels: int) -> tuple[bytes, bytes | None]:
    """Mono PCM16 of channel 0, and of channel 1 for stereo chunks (``None`` for mono)."""
    if channels != 2:
        return data, None
    both = np.frombuffer(data, "<i2")
    return both[0::2].tobytes(), both[1::2].tobytes()


def _check_rate(name: str, rate: int) -> None:
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise ConfigError(name, rate, "a positive rate in Hz such as 24000")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


class BrowserMicrophone(anywidget.AnyWidget):
    """The browser's microphone as an :class:`~voicelive_nb.audio.base.AudioSource`.

    Display it and click *Start microphone*. Chunks that arrive while nothing iterates
    ``frames()`` are dropped and counted in ``chunks_dropped`` (a microphone that is not being
    listened to). A jump in a chunk's sequence number is filled with silence of the same
    length (the session's timeline stays continuous) and counted in ``seq_gaps`` /
    ``chunks_missing``. When the consumer falls ``max_queue_s`` behind, the oldest chunk is
    dropped (``overruns``). ``muted = True`` yields silence of the same size.

    ``latencies_ms`` holds the last 2000 page → kernel delays (the page's wall clock at send
    versus the kernel's at receipt: meaningful when both run on one machine, shifted by the
    clock offset otherwise).
    """

    _esm = _MIC_ESM
    _vlnb_id = T.Unicode().tag(sync=True)
    state = T.Unicode("idle").tag(sync=True)
    error = T.Unicode("").tag(sync=True)
    page_visible = T.Bool(True).tag(sync=True)
    device_label = T.Unicode("").tag(sync=True)
    context_rate = T.Int(0).tag(sync=True)
    sample_rate = T.Int(24000).tag(sync=True)
    chunk_ms = T.Int(100).tag(sync=True)
    echo_cancellation = T.Bool(True).tag(sync=True)
    noise_suppression = T.Bool(True).tag(sync=True)
    auto_gain_control = T.Bool(True).tag(sync=True)
    reference_speaker = T.Unicode("").tag(sync=True)
    """The page id of the attached :class:`BrowserSpeaker` (set by :meth:`attach_reference`)."""
    reference_state = T.Unicode("").tag(sync=True)
    """Set by the page: ``""`` (no reference), ``"tapped"`` (stereo chunks with the speaker's
    playback), or ``"missing: <why>"`` (mono chunks; channel 1 becomes silence)."""

    def __init__(
        self,
        *,
        sample_rate: int = 24000,
        chunk_ms: int = 100,
        echo_cancellation: bool = True,
        noise_suppression: bool = True,
        auto_gain_control: bool = True,
        max_queue_s: float = 2.0,
        **kwargs: Any,
    ) -> None:
        _check_rate("sample_rate", sample_rate)
        if not isinstance(chunk_ms, int) or not 20 <= chunk_ms <= 100:
            raise ConfigError("chunk_ms", chunk_ms, "20 to 100 (milliseconds of audio per message)")
        if max_queue_s <= 0:
            raise ConfigError("max_queue_s", max_queue_s, "a positive number of seconds")
        super().__init__(
            sample_rate=sample_rate,
            chunk_ms=chunk_ms,
            echo_cancellation=echo_cancellation,
            noise_suppression=noise_suppression,
            auto_gain_control=auto_gain_control,
            _vlnb_id=uuid.uuid4().hex,
            **kwargs,
        )
        self.max_queue_s = max_queue_s
        self.muted = False
        self.chunks = 0
        """Chunks received from the page."""
        self.bytes_received = 0
        self.chunks_dropped = 0
        self.seq_gaps = 0
        self.chunks_missing = 0
        self.overruns = 0
        self.frames_yielded = 0
        self.block_time = 0.0
        """``time.monotonic()`` at which the last chunk taken from the queue had arrived."""
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=2000)
        self._last_chunk = b""
        self._stream_id: Any = None
        self._last_seq = -1
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Chunk | None] | None = None
        self._iterating = False
        self._closed = False
        self._reference: BrowserSpeaker | None = None
        self.reference_missing_chunks = 0
        """Mono chunks given to :meth:`reference_frames` (channel 1 filled with silence)."""
        self.frame_anchors: collections.deque[tuple[int, int, int]] = collections.deque(maxlen=64)
        """``(sample, context frame, context rate)``: the sample index (at the iterator's rate,
        counted from the start of the current ``frames()``/``reference_frames()``) at which a
        capture graph of the page began, and the page's AudioContext frame of that sample."""
        self.on_msg(self._on_custom_msg)

    def __repr__(self) -> str:
        return f"BrowserMicrophone({self.state}, {self.chunks} chunks, {self.sample_rate} Hz)"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def widget(self) -> BrowserMicrophone:
        """The widget to display (the microphone itself; for symmetry with :class:`BrowserSpeaker`)."""
        return self

    @property
    def capturing(self) -> bool:
        return self.state == "capturing"

    @property
    def level_dbfs(self) -> float:
        """RMS level of the last chunk in dBFS (``-inf`` for silence or before any audio)."""
        return rms_dbfs(self._last_chunk)

    def latency_stats(self) -> dict[str, float]:
        """p50 / p99 / max of the page → kernel delays in ms (NaN before any chunk)."""
        values = list(self.latencies_ms)
        return {
            "n": float(len(values)),
            "p50_ms": _percentile(values, 50),
            "p99_ms": _percentile(values, 99),
            "max_ms": max(values) if values else math.nan,
        }

    def start_capture(self) -> None:
        """Ask the page to open the microphone (as its *Start microphone* button does). Browsers
        allow it only after a user gesture on the page, e.g. the click on the panel's Start."""
        self.send({"type": "start"})

    def stop_capture(self) -> None:
        """Ask the page to release the microphone (the state becomes ``stopped``)."""
        self.send({"type": "stop"})

    # --- client-reference echo cancellation -------------------------------------------------

    def attach_reference(self, speaker: BrowserSpeaker | None) -> None:
        """Take the echo reference from ``speaker`` (``None``: no reference any more).

        The page then captures in the speaker's AudioContext and feeds the speaker's playback
        node to the capture worklet as a second input: each chunk is stereo (microphone, what
        the page was playing in that same render quantum), sample-aligned by construction. The
        speaker must be displayed in the same page as the microphone; if it is not (or is not
        playing), the page says so in ``reference_state`` and sends mono chunks, and
        :meth:`reference_frames` fills channel 1 with silence.
        """
        if speaker is not None and not isinstance(speaker, BrowserSpeaker):
            raise ConfigError(
                "reference",
                type(speaker).__name__,
                "a BrowserSpeaker shown in the same page as this BrowserMicrophone "
                "(a kernel SpeakerSink is the reference of a MicrophoneSource)",
            )
        if speaker is not None and speaker.widget.comm is None:
            raise ConfigError("reference", speaker, "a BrowserSpeaker whose widget is not closed")
        self._reference = speaker
        self.reference_speaker = speaker.widget._vlnb_id if speaker is not None else ""

    @property
    def reference(self) -> BrowserSpeaker | None:
        """The attached speaker (see :meth:`attach_reference`)."""
        return self._reference

    @property
    def reference_available(self) -> bool:
        """Whether :meth:`reference_frames` can give channel 1 (a speaker is attached)."""
        return self._reference is not None

    @property
    def reference_problem(self) -> str | None:
        if self._reference is None:
            return "has no speaker attached: mic.attach_reference(browser_speaker)"
        state = str(self.reference_state)
        return state if state.startswith("missing") else None

    # Kernel main thread (the comm): account, then hand off to the loop. Nothing blocks.
    def _on_custom_msg(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict) or content.get("type") != "pcm" or not buffers:
            return
        now_ms = time.time() * 1000
        channels = 2 if content.get("channels") == 2 else 1
        data = bytes(buffers[0])
        if len(data) % (2 * channels):
            data = data[: len(data) - len(data) % (2 * channels)]
        rate = int(content.get("rate") or self.sample_rate)
        seq = int(content.get("seq", -1))
        t = content.get("t")
        frame = content.get("frame")
        ctx_frame = int(frame) if isinstance(frame, (int, float)) else None
        if isinstance(t, (int, float)):
            self.latencies_ms.append(now_ms - float(t))
        missing = 0
        new_stream = False
        with self._lock:
            self.chunks += 1
            self.bytes_received += len(data)
            stream_id = content.get("stream")
            if stream_id != self._stream_id:
                self._stream_id = stream_id
                new_stream = True
            elif seq > self._last_seq + 1:
                missing = seq - self._last_seq - 1
                self.seq_gaps += 1
                self.chunks_missing += missing
            self._last_seq = seq
            loop = self._loop
        if loop is None:
            self.chunks_dropped += 1
            return
        fill = min(missing * len(data), int(_MAX_GAP_FILL_S * rate) * 2 * channels)
        try:
            loop.call_soon_threadsafe(
                self._put, data, rate, fill, time.monotonic(), channels, ctx_frame if new_stream else None
            )
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.chunks_dropped += 1

    # Event-loop thread.
    def _put(
        self, data: bytes, rate: int, fill: int, t: float, channels: int = 1, frame: int | None = None
    ) -> None:
        q = self._queue
        if q is None:
            self.chunks_dropped += 1
            return
        chunk: _Chunk = (data, rate, t, channels, frame)
        items = ((bytes(fill), rate, t, channels, None), chunk) if fill else (chunk,)
        for item in items:
            if q.full():
                q.get_nowait()
                self.overruns += 1
            q.put_nowait(item)

    def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        """Yield PCM16 mono frames of exactly ``frame_ms`` at ``sample_rate`` until closed
        (channel 0 of stereo chunks: the microphone)."""
        return self._open_frames(sample_rate, frame_ms, stereo=False)

    def reference_frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        """Stereo frames of ``frame_ms`` (4 bytes a sample pair): channel 0 the microphone,
        channel 1 what the attached :class:`BrowserSpeaker` played in the page at that moment
        (silence when nothing plays, or while the page cannot tap it: ``reference_state``)."""
        if self._reference is None:
            raise AudioError(
                "browser microphone has no echo reference: attach its speaker with "
                "mic.attach_reference(browser_speaker)"
            )
        return self._open_frames(sample_rate, frame_ms, stereo=True)

    def _open_frames(self, sample_rate: int, frame_ms: int, *, stereo: bool) -> AsyncIterator[bytes]:
        _check_rate("sample_rate", sample_rate)
        frame_samples = sample_rate * frame_ms // 1000
        if frame_samples <= 0:
            raise ConfigError("frame_ms", frame_ms, f"a frame length that holds samples at {sample_rate} Hz")
        if self._iterating:
            raise AudioError("browser microphone is already streaming; one frames() iterator at a time")
        self._closed = False  # a new session on the same widget: listen again
        if sample_rate != self.sample_rate:
            self.sample_rate = sample_rate  # the page captures at this rate from its next start
        return self._frames(sample_rate, frame_samples * 2, stereo)

    async def _frames(self, sample_rate: int, frame_bytes: int, stereo: bool = False) -> AsyncIterator[bytes]:
        """``frame_bytes`` is one channel's frame; stereo frames are twice that."""
        if self._iterating:
            raise AudioError("browser microphone is already streaming; one frames() iterator at a time")
        if self._closed:
            return
        self._iterating = True
        chunk_ms = max(20, int(self.chunk_ms))
        q: asyncio.Queue[_Chunk | None] = asyncio.Queue(
            maxsize=max(2, math.ceil(self.max_queue_s * 1000 / chunk_ms) * 2)
        )
        self._queue = q
        self.frame_anchors.clear()
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._stream_id = None  # the first chunk of this iterator anchors the timeline
        resamplers: tuple[StreamResampler, StreamResampler] | None = None
        silence = bytes(2 * frame_bytes if stereo else frame_bytes)
        pending = bytearray()
        pending_ref = bytearray()
        produced = 0  # samples (per channel, at sample_rate) yielded so far
        try:
            while not self._closed:
                item = await q.get()
                if item is None:
                    break
                data, rate, self.block_time, channels, ctx_frame = item
                mic, ref = _split(data, channels)
                self._last_chunk = mic
                if ctx_frame is not None:
                    self.frame_anchors.append((produced + len(pending) // 2, ctx_frame, rate))
                if stereo and ref is None:
                    self.reference_missing_chunks += 1
                    ref = bytes(len(mic))
                if rate != sample_rate:
                    if resamplers is None or resamplers[0].from_rate != rate:
                        resamplers = (StreamResampler(rate, sample_rate), StreamResampler(rate, sample_rate))
                    mic = resamplers[0].process(mic)
                    if stereo and ref is not None:  # the same filter on both: they stay aligned
                        ref = resamplers[1].process(ref)
                pending += mic
                if stereo and ref is not None:
                    pending_ref += ref
                while len(pending) >= frame_bytes:
                    frame = bytes(pending[:frame_bytes])
                    del pending[:frame_bytes]
                    produced += frame_bytes // 2
                    if stereo:
                        ref_frame = bytes(pending_ref[:frame_bytes])
                        del pending_ref[:frame_bytes]
                        frame = interleave(np.frombuffer(frame, "<i2"), np.frombuffer(ref_frame, "<i2"))
                    self.frames_yielded += 1
                    yield silence if self.muted else frame
        finally:
            with self._lock:
                self._loop = None
            self._queue = None
            self._iterating = False

    async def aclose(self) -> None:
        """End a running ``frames()`` iterator (idempotent; a later ``frames()`` listens again).
        The widget stays displayed; the page keeps the microphone until *Stop* (or
        :meth:`stop_capture`)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._loop = None
        q = self._queue
        if q is not None:
            if q.full():
                q.get_nowait()
            q.put_nowait(None)

    async def __aenter__(self) -> BrowserMicrophone:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class SpeakerWidget(anywidget.AnyWidget):
    """The page side of :class:`BrowserSpeaker` (display this, or the speaker itself)."""

    _esm = _SPEAKER_ESM
    _vlnb_id = T.Unicode().tag(sync=True)
    state = T.Unicode("idle").tag(sync=True)
    error = T.Unicode("").tag(sync=True)
    sample_rate = T.Int(24000).tag(sync=True)
    context_rate = T.Int(0).tag(sync=True)
    jitter_ms = T.Int(60).tag(sync=True)
    report_ms = T.Int(40).tag(sync=True)


class BrowserSpeaker:
    """The browser's speaker as an :class:`~voicelive_nb.audio.base.AudioSink`.

    The page starts its AudioContext at the first click on the page (browsers allow audio
    only after a user gesture). Audio written while the page does not play (``state`` not
    ``running``/``suspended``: no click yet, no page, a closed tab) is dropped and counted in
    ``frames_dropped`` rather than piling up, so ``queued_ms()`` stays truthful.

    Counters: ``chunks_sent``, ``bytes_sent``, ``clears``, ``reports`` (position reports from
    the page), ``underruns`` (as reported by the page), ``last_flush`` (the page's account of
    the last flush: ``dropped_ms``, ``late_ms`` = how much more of the interrupted item had
    played by the time the flush reached the page than ``played_ms`` said at ``clear()``).

    ``widget`` is the :class:`SpeakerWidget` (an anywidget); displaying the speaker displays it.
    (The sink is not the widget itself: ``open``/``close`` mean different things to a widget.)
    """

    def __init__(self, *, jitter_ms: int = 60, report_ms: int = 40, **kwargs: Any) -> None:
        if not isinstance(jitter_ms, int) or jitter_ms < 0:
            raise ConfigError("jitter_ms", jitter_ms, "milliseconds, 0 or more")
        if not isinstance(report_ms, int) or not 5 <= report_ms <= 1000:
            raise ConfigError("report_ms", report_ms, "5 to 1000 milliseconds")
        self.widget = SpeakerWidget(
            jitter_ms=jitter_ms, report_ms=report_ms, _vlnb_id=uuid.uuid4().hex, **kwargs
        )
        self._lock = threading.Lock()
        self._tracker: PlayoutTracker | None = None
        self._epoch = 0
        self._confirmed = 0  # frames of this epoch the page said it played
        self._confirmed_at_clear = 0
        self._opened_rate: int | None = None
        self._closed = False
        self.chunks_sent = 0
        self.bytes_sent = 0
        self.frames_dropped = 0
        self.clears = 0
        self.flushes_reported = 0
        self.reports = 0
        self.underruns = 0
        self.page_queued_frames = 0
        self.last_report_time = 0.0
        self.last_flush: dict[str, Any] | None = None
        self.starts: collections.deque[dict[str, int]] = collections.deque(maxlen=256)
        """The page's account of each burst of playback: ``epoch``, ``played`` (frames of the
        epoch before it) and ``frame``, the AudioContext frame of its first sample at ``rate``
        (the clock of the microphone's ``frame_anchors`` when this speaker is its reference)."""
        self.widget.on_msg(self._on_custom_msg)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    @property
    def state(self) -> str:
        """The page's state: ``idle`` (no click yet), ``running``, ``suspended``, ``error``, ``stopped``."""
        return str(self.widget.state)

    @property
    def sample_rate(self) -> int:
        return int(self.widget.sample_rate)

    def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.widget.send(content, buffers)

    def __repr__(self) -> str:
        return (
            f"BrowserSpeaker({self.state}, {self._opened_rate or 'not open'} Hz, {self.chunks_sent} chunks)"
        )

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def playing_in_page(self) -> bool:
        return self.state in _PLAYING_STATES

    # --- AudioSink (engine thread) ---------------------------------------------------------

    def open(self, sample_rate: int) -> None:
        """Prepare for PCM16 mono audio at ``sample_rate`` (the page plays at this rate)."""
        _check_rate("sample_rate", sample_rate)
        self._closed = False  # a new session on the same widget
        with self._lock:
            if self._tracker is not None and self._opened_rate == sample_rate:
                return
            self._tracker = PlayoutTracker(sample_rate)
            self._opened_rate = sample_rate
            self._confirmed = 0
        if self.widget.sample_rate != sample_rate:
            self.widget.sample_rate = sample_rate

    def _require_tracker(self) -> PlayoutTracker:
        if self._closed:
            raise AudioError("browser speaker is closed")
        if self._tracker is None:
            raise AudioError("browser speaker is not open; call open(sample_rate) first")
        return self._tracker

    def write(self, item_id: str, pcm16: bytes) -> None:
        """Send audio of ``item_id`` to the page; never blocks."""
        tracker = self._require_tracker()
        if len(pcm16) % 2:
            raise AudioError(f"pcm16 audio must have an even number of bytes, got {len(pcm16)}")
        frames = len(pcm16) // 2
        if not frames:
            return
        if not self.playing_in_page:
            self.frames_dropped += frames
            return
        with self._lock:
            tracker.add(item_id, frames)
            epoch = self._epoch
        self.send({"type": "audio", "epoch": epoch}, [bytes(pcm16)])
        self.chunks_sent += 1
        self.bytes_sent += len(pcm16)

    def end_of_item(self, item_id: str) -> None:
        """No more audio of ``item_id``: the page plays what it holds even below ``jitter_ms``."""
        self._require_tracker()
        if self.playing_in_page:
            self.send({"type": "end", "item": item_id})

    def clear(self) -> None:
        """Barge-in: the page drops everything queued at once and reports the flush."""
        tracker = self._tracker
        if tracker is None or self._closed:
            return
        with self._lock:
            tracker.clear()
            self._confirmed_at_clear = self._confirmed
            self._epoch += 1
            self._confirmed = 0
            epoch = self._epoch
            self.clears += 1
        self.send({"type": "clear", "epoch": epoch})

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of ``item_id`` the page has confirmed handing to its audio output."""
        tracker = self._tracker
        if tracker is None:
            return 0
        with self._lock:
            return tracker.played_ms(item_id)

    def queued_ms(self) -> int:
        """Audio sent and not yet confirmed played (in flight plus the page's queue)."""
        tracker = self._tracker
        if tracker is None:
            return 0
        with self._lock:
            return tracker.queued_frames() * 1000 // tracker.sample_rate

    @property
    def current_item(self) -> str | None:
        tracker = self._tracker
        if tracker is None:
            return None
        with self._lock:
            return tracker.current_item

    def close(self) -> None:
        """Stop sending (idempotent; a later ``open()`` starts again); the page flushes what it
        holds. The widget stays displayed."""
        if self._closed:
            return
        self.clear()
        self._closed = True

    def stop_playback(self) -> None:
        """Ask the page to close its AudioContext (the state becomes ``stopped``)."""
        self.send({"type": "stop"})

    def __enter__(self) -> BrowserSpeaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reports from the page (kernel main thread) ---------------------------------------

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: list[Any]) -> None:
        if isinstance(content, dict) and content.get("type") == "started":
            keys = ("epoch", "played", "frame", "rate")
            if all(isinstance(content.get(k), (int, float)) for k in keys):
                self.starts.append({k: int(content[k]) for k in keys})
            return
        if not isinstance(content, dict) or content.get("type") not in ("played", "flushed"):
            return
        tracker = self._tracker
        with self._lock:
            self.reports += 1
            self.last_report_time = time.monotonic()
            self.underruns = int(content.get("underruns", self.underruns))
            self.page_queued_frames = int(content.get("queued", 0))
            epoch = int(content.get("epoch", -1))
            if content["type"] == "flushed":
                self.flushes_reported += 1
                rate = tracker.sample_rate if tracker is not None else self.sample_rate
                prev_played = int(content.get("prev_played", 0))
                late = max(0, prev_played - self._confirmed_at_clear) if epoch == self._epoch else 0
                self.last_flush = {
                    "epoch": epoch,
                    "dropped_ms": int(content.get("dropped", 0)) * 1000 // rate,
                    "late_ms": late * 1000 // rate,
                }
            if tracker is None or epoch != self._epoch:
                return  # a report from before the last clear(): that audio was already written off
            played = int(content.get("played", 0))
            delta = min(played - self._confirmed, tracker.queued_frames())
            if delta > 0:
                tracker.consume(delta)
                self._confirmed += delta
