/** Audit: the Event shape and the sink. */
export { toAuditEvent, type AuditEvent, type AuditFacts, type AuditStage, type Transport } from './event.ts';
export { AuditSink, type AuditSinkOptions } from './sink.ts';
