"""Audio plumbing the speech tasks share: microphone capture, voice activity, audio files, the transcript."""
