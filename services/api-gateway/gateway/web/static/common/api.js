// The public REST API (/api/v1) as the front ends see it: a token per site, JSON in and out.

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export function createApi(storageKey) {
  const listeners = new Set();

  function token() {
    return localStorage.getItem(storageKey);
  }

  function setToken(value) {
    if (value) localStorage.setItem(storageKey, value);
    else localStorage.removeItem(storageKey);
  }

  async function request(method, path, { body, params } = {}) {
    const url = new URL(`/api/v1${path}`, location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    const headers = { Accept: "application/json" };
    const current = token();
    if (current) headers.Authorization = `Bearer ${current}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, "network", error.message);
    }
    if (response.status === 401 && current) {
      setToken(null);
      for (const listener of listeners) listener();
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError(response.status, data?.code, data?.detail || response.statusText);
    }
    return data;
  }

  async function login(username, password) {
    const form = new URLSearchParams({ username, password });
    const response = await fetch("/api/v1/auth/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: form,
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data?.code, data?.detail);
    setToken(data.access_token);
    return data;
  }

  // Every page of a list, for the small sites one office PC runs (capped so a city does not hang).
  async function all(path, params = {}, cap = 5000) {
    const items = [];
    for (let offset = 0; offset < cap; offset += 500) {
      const page = await request("GET", path, { params: { ...params, limit: 500, offset } });
      items.push(...page.items);
      if (page.items.length < 500) break;
    }
    return items;
  }

  return {
    token,
    setToken,
    login,
    all,
    onLoggedOut: (listener) => listeners.add(listener),
    get: (path, params) => request("GET", path, { params }),
    post: (path, body) => request("POST", path, { body: body ?? {} }),
    patch: (path, body) => request("PATCH", path, { body }),
    put: (path, body) => request("PUT", path, { body }),
    del: (path) => request("DELETE", path),
  };
}

// Run tasks with at most `width` in flight: many small requests without flooding the gateway.
export async function inBatches(items, width, task) {
  const results = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]).catch((error) => error);
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return results;
}
