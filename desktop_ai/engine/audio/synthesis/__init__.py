"""Speech synthesis (text to speech) beside the other audio: Piper voices (VITS on ONNX Runtime) with Piper's own
phoneme rules, phonemes from espeak-ng run as a separate program (it is GPL: never linked into the app), playback
through sounddevice and WAV files through soundfile, and a reader that speaks streamed text sentence by sentence."""
