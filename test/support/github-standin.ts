import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';

/**
 * A stand-in for GitHub's secret scanning REST API, following the documented shape of
 * `GET /repos/{owner}/{repo}/secret-scanning/alerts/{alert_number}` (its `secret` field holds the literal) and its
 * bearer-token authentication. `requests` counts the alert reads.
 */
export async function startGitHubStandIn() {
  const token = `ghp_${randomBytes(18).toString('hex')}`;
  const alerts = new Map<string, { number: number; secret_type: string; secret: string; html_url: string }>();
  const requests: string[] = [];
  const app = express();
  app.get('/repos/:owner/:repo/secret-scanning/alerts/:number', (req, res) => {
    requests.push(req.path);
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.status(401).json({ message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' });
      return;
    }
    const alert = alerts.get(`${req.params.owner}/${req.params.repo}#${req.params.number}`);
    if (!alert) {
      res.status(404).json({ message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
      return;
    }
    res.json({ ...alert, state: 'open', validity: 'unknown', created_at: new Date().toISOString(), url: `https://api.github.com/repos/${req.params.owner}/${req.params.repo}/secret-scanning/alerts/${alert.number}` });
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  let next = 1;
  return {
    apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    token,
    requests,
    /** Files an alert for `secret` found in `repository`; returns its number and the webhook body GitHub would send. */
    alert(repository: string, secret: string, secretType = 'generic_password') {
      const number = next++;
      const html_url = `https://github.com/${repository}/security/secret-scanning/${number}`;
      alerts.set(`${repository}#${number}`, { number, secret_type: secretType, secret, html_url });
      // The webhook's alert object carries no secret.
      const webhook = { action: 'created', alert: { number, secret_type: secretType, html_url, state: 'open' }, repository: { full_name: repository } };
      return { number, webhook };
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
