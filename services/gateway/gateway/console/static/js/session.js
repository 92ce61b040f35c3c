// Who is signed in: the access token, kept in this tab's sessionStorage (gone when the tab is),
// and the claims read from it. The token is checked by the gateway on every call, not here.

const TOKEN_KEY = "conduit.console.token";

/** The claims of a JWT (not verified: the server does that), or null if it is not one. */
export function claimsOf(token) {
  const parts = token.trim().split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")));
    return typeof claims === "object" && claims !== null ? claims : null;
  } catch {
    return null;
  }
}

/** A session for a token: its user, role and expiry; null when the token is malformed. */
export function sessionOf(token) {
  const claims = claimsOf(token);
  if (!claims || typeof claims.sub !== "string" || !["USER", "ADMIN"].includes(claims.role)) {
    return null;
  }
  return {
    token: token.trim(),
    sub: claims.sub,
    role: claims.role,
    isAdmin: claims.role === "ADMIN",
    expiresAtMs: typeof claims.exp === "number" ? claims.exp * 1000 : null,
  };
}

/** The stored session, unless it has run out. */
export function loadSession() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const session = token ? sessionOf(token) : null;
  if (session && session.expiresAtMs !== null && session.expiresAtMs <= Date.now()) {
    clearSession();
    return null;
  }
  return session;
}

/** Keep `token` for this tab; the session it makes, or null (nothing stored) if malformed. */
export function saveToken(token) {
  const session = sessionOf(token);
  if (session) sessionStorage.setItem(TOKEN_KEY, session.token);
  return session;
}

/** Forget the token (and the notifier offsets kept for this tab). */
export function clearSession() {
  sessionStorage.removeItem(TOKEN_KEY);
}
