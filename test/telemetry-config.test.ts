import { ConfigError, loadConfig, metricsListen } from '../src/config';
import { startTracing } from '../src/telemetry/tracing';

const base = {
  SERVICENOW_URL: 'https://example.service-now.com',
  SERVICENOW_USERNAME: 'changegate',
  SERVICENOW_PASSWORD: 'pw',
  SERVICENOW_WEBHOOK_SECRET: 'webhook-secret-0123456789',
  CHANGEGATE_ADMIN_TOKEN: 'admin-token-0123456789',
};

describe('metrics and traces configuration', () => {
  it('serves no metrics and exports no traces unless configured', () => {
    const config = loadConfig(base);
    expect(metricsListen(config)).toBeUndefined();
    expect(metricsListen(loadConfig({ ...base, CHANGEGATE_METRICS_PORT: '' }))).toBeUndefined();
    expect(config.OTEL_EXPORTER_OTLP_ENDPOINT).toBeUndefined();
    expect(loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: '' }).OTEL_EXPORTER_OTLP_ENDPOINT).toBeUndefined();
    expect(startTracing(config.OTEL_EXPORTER_OTLP_ENDPOINT, 'changegate')).toBeUndefined();
  });

  it('takes a metrics port and host, and an OTLP endpoint', () => {
    expect(metricsListen(loadConfig({ ...base, CHANGEGATE_METRICS_PORT: '9464' }))).toEqual({ port: 9464, host: '127.0.0.1' });
    expect(metricsListen(loadConfig({ ...base, CHANGEGATE_METRICS_PORT: '9464', CHANGEGATE_METRICS_HOST: '0.0.0.0' }))).toEqual({ port: 9464, host: '0.0.0.0' });
    expect(loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://collector:4318');
  });

  it('refuses a malformed metrics port or OTLP endpoint, naming the variable', () => {
    expect(() => loadConfig({ ...base, CHANGEGATE_METRICS_PORT: 'ninety' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, CHANGEGATE_METRICS_PORT: '70000' })).toThrow(/CHANGEGATE_METRICS_PORT/);
    expect(() => loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318 please' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT/);
  });
});
