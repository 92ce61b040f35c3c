// The REST API as the signed-in user calls it: bearer token, JSON, and RFC 9457 problems.

/** An error answer; `problem` is the problem+json document (or a stand-in for other bodies). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/**
 * A client of the gateway. `token()` gives the current access token; `onUnauthorized()` runs on
 * a 401 (the token ran out or was refused), before the ApiError is thrown.
 */
export function createApi({ token, onUnauthorized }) {
  async function call(method, path, { query, body } = {}) {
    const url = new URL(path, location.origin);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const headers = { Accept: "application/json, application/problem+json" };
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
      throw new ApiError(0, { title: "Network error", detail: `the gateway did not answer (${error.message})` });
    }
    const type = response.headers.get("Content-Type") ?? "";
    const data = response.status === 204 ? null : type.includes("json") ? await response.json() : await response.text();
    // The health document is passed through with its 503 when a check fails: still a document.
    if (response.ok || (response.status === 503 && type.includes("health+json"))) return data;
    if (response.status === 401) onUnauthorized?.();
    const problem = typeof data === "object" && data !== null ? data : { title: response.statusText, detail: String(data) };
    throw new ApiError(response.status, problem);
  }

  return {
    get: (path, query) => call("GET", path, { query }),
    post: (path, body) => call("POST", path, { body }),
    put: (path, body) => call("PUT", path, { body }),
    del: (path) => call("DELETE", path),
  };
}
