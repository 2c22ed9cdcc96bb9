import { context, propagation, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';

/** This process's tracer and where its spans go; the worker also hands the processor to workflows' span sink. */
export interface Tracing {
  tracer: Tracer;
  resource: Resource;
  processor: SpanProcessor;
  /** Exports what is still buffered, then stops. */
  shutdown(): Promise<void>;
}

/**
 * Traces over OTLP/HTTP (JSON) to `<endpoint>/v1/traces`, as OTEL_EXPORTER_OTLP_ENDPOINT means in the OpenTelemetry
 * spec; without an endpoint there is no tracing at all. The provider is not registered globally: the tracer is handed
 * to the Temporal interceptors and the webhook spans. Only the context manager and the W3C propagator are global,
 * since spans nest across awaits through the one and cross into Temporal's headers through the other.
 */
export function startTracing(endpoint: string | undefined, service: string): Tracing | undefined {
  if (!endpoint) return undefined;
  const resource = new Resource({ 'service.name': service });
  const processor = new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, '')}/v1/traces` }), { scheduledDelayMillis: 500 });
  const provider = new BasicTracerProvider({ resource, spanProcessors: [processor] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return { tracer: provider.getTracer('changegate'), resource, processor, shutdown: () => provider.shutdown() };
}
