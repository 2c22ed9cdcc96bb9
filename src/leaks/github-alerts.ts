import axios from 'axios';

export interface GitHubSettings {
  /** https://api.github.com, or a GitHub Enterprise Server's /api/v3. */
  apiUrl: string;
  /** A token that may read secret scanning alerts of the repositories (fine-grained: "Secret scanning alerts: read"). */
  token: string;
}

export class GitHubAlertError extends Error {}

/**
 * Fetches one secret scanning alert (`GET /repos/{owner}/{repo}/secret-scanning/alerts/{number}`), whose `secret`
 * field holds the literal. The caller fingerprints it at once; this module never keeps or logs it, and its errors
 * name the alert, never the answer's body.
 */
export async function fetchAlertSecret(settings: GitHubSettings, repository: string, number: number): Promise<{ secret: string; secretType: string; url?: string }> {
  const [owner, repo] = repository.split('/');
  const url = `${settings.apiUrl.replace(/\/+$/, '')}/repos/${encodeURIComponent(owner ?? '')}/${encodeURIComponent(repo ?? '')}/secret-scanning/alerts/${number}`;
  let res;
  try {
    res = await axios.get(url, {
      headers: { authorization: `Bearer ${settings.token}`, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28' },
      timeout: 10_000,
      maxRedirects: 0,
      validateStatus: () => true,
    });
  } catch (err) {
    throw new GitHubAlertError(`GitHub could not be reached for alert ${number} of ${repository}: ${(err as Error).message}`);
  }
  if (res.status !== 200) throw new GitHubAlertError(`GitHub answered HTTP ${res.status} for alert ${number} of ${repository}`);
  const body = res.data as { secret?: unknown; secret_type?: unknown; html_url?: unknown };
  if (typeof body.secret !== 'string' || body.secret === '') throw new GitHubAlertError(`GitHub's alert ${number} of ${repository} carries no secret (the token may lack the right to read it)`);
  return { secret: body.secret, secretType: typeof body.secret_type === 'string' ? body.secret_type : 'unknown', ...(typeof body.html_url === 'string' ? { url: body.html_url } : {}) };
}
