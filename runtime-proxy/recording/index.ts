/** Session recording: exec and attach sessions as asciicast v2, read from kube's stream framing. */
export { castOutput, parseCast, type Cast, type CastEvent, type CastHeader } from './asciicast.ts';
export { SessionRecorder, type RecordingMeta, type RecordingResult, type SessionTap } from './session-recorder.ts';
