"""Files shipped with the package: the demo question the quickstart plays as the user's voice.

``question.wav`` says :data:`QUESTION_TEXT` (24 kHz mono PCM16). It was made with the
package's own speech synthesis (``synthesize(QUESTION_TEXT, voice="en-us+f2",
words_per_minute=128)``), a voice and rate the emulator's PocketSphinx recognises word for
word; :func:`question_phrases` is a phrase list that makes recognition of it exact on the
emulator (and biases Azure's recogniser towards it).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["QUESTION_TEXT", "QUESTION_WAV", "question_phrases"]

QUESTION_WAV = Path(__file__).with_name("question.wav")
QUESTION_TEXT = "What is the weather like today?"


def question_phrases() -> list[str]:
    """``input_audio_transcription.phrase_list`` for the bundled question.

    Only for the recorded question: on the emulator a phrase list is a grammar, so it would
    also force-fit other speech (a microphone) to the question.
    """
    return [QUESTION_TEXT]
