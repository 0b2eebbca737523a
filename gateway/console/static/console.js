// The console's one script: passkey registration, login, and signing what a page shows.
// Served from the console's origin (the Content-Security-Policy allows no other script). Every
// change it asks for is a POST with the session's CSRF token (the page's <meta name="csrf">);
// the browser adds the Origin header the console checks.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf"]').content;

function fromB64url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function toB64url(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (_) {
    doc = { error: text };
  }
  if (!response.ok) throw new Error(doc.error || `${response.status}`);
  return doc;
}

function say(element, text, ok) {
  element.textContent = text;
  element.className = ok ? "result ok" : "result flag";
}

// What navigator.credentials.get returned, as schemas.passkeys reads a passkey's signature.
function assertionText(credential) {
  const r = credential.response;
  return "webauthn:" + [r.authenticatorData, r.clientDataJSON, r.signature].map(toB64url).join(".");
}

async function logIn(result) {
  const options = await post("/login/options", {});
  options.challenge = fromB64url(options.challenge);
  options.allowCredentials = options.allowCredentials.map((c) => ({ ...c, id: fromB64url(c.id) }));
  const credential = await navigator.credentials.get({ publicKey: options });
  const done = await post("/login", { id: toB64url(credential.rawId), assertion: assertionText(credential) });
  say(result, `logged in as ${done.admin_id}`, true);
  window.location.assign(done.next);
}

async function register(button, result) {
  const token = button.dataset.token;
  const options = await post("/enrol/options", { token });
  options.challenge = fromB64url(options.challenge);
  options.user.id = fromB64url(options.user.id);
  options.excludeCredentials = (options.excludeCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) }));
  const credential = await navigator.credentials.create({ publicKey: options });
  const r = credential.response;
  const json = {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    response: { clientDataJSON: toB64url(r.clientDataJSON), attestationObject: toB64url(r.attestationObject) },
  };
  const done = await post("/enrol", { token, credential: json });
  document.getElementById("passkey").textContent = done.key;
  document.getElementById("fingerprint").textContent = done.fingerprint;
  document.getElementById("command").textContent = done.command;
  document.getElementById("enrolled").hidden = false;
  say(result, `passkey registered for ${done.admin_id}: not pinned until the quorum signs the change`, true);
}

// The bytes a page shows: UTF-8, the zero byte shown as U+2400 (console.decisions.shown_text).
const shownBytes = (text) => new TextEncoder().encode(text.replaceAll("\u2400", "\u0000"));

// The text a <pre class="bytes"> shows, each character that draws nothing read back from its
// marked box (console.layout.esc: <span class="cc" data-cp="202E">U+202E</span>) as itself.
function shownText(pre) {
  let text = "";
  for (const node of pre.childNodes) {
    const marked = node.nodeType === Node.ELEMENT_NODE && node.classList.contains("cc");
    text += marked ? String.fromCodePoint(parseInt(node.dataset.cp, 16)) : node.textContent;
  }
  return text;
}

// The challenge is the SHA-256 of exactly the bytes the page shows, computed here.
async function signShown(button, result) {
  const shown = shownText(button.parentElement.querySelector("pre.bytes"));
  const me = document.getElementById("me");
  const challenge = await crypto.subtle.digest("SHA-256", shownBytes(shown));
  const credential = await navigator.credentials.get({
    publicKey: {
      challenge,
      rpId: me.dataset.rp,
      allowCredentials: [{ type: "public-key", id: fromB64url(me.dataset.credential) }],
      userVerification: "required",
      timeout: 120000,
    },
  });
  const body = { bytes: shown, assertion: assertionText(credential) };
  if (button.dataset.proposal) body.proposal = button.dataset.proposal;
  // A record the console built from a form (a policy, a webhook request) is named by its draft id.
  if (button.dataset.draft) body.draft = button.dataset.draft;
  button.disabled = true;
  say(result, "relayed; waiting for the outcome...", true);
  const done = await post(button.dataset.relay || "/decisions/relay", body);
  const outcome = done.outcome
    ? " — " + Object.entries(done.outcome).map(([k, v]) => `${k}: ${v}`).join(", ")
    : "";
  say(result, done.what + outcome, true);
  // A webhook's signing secret: shown once, here, never stored by the console.
  const secret = document.getElementById("secret");
  if (done.secret && secret) {
    secret.querySelector("pre.secret").textContent = done.secret;
    secret.hidden = false;
  }
}

// A form whose record the console builds (an agent's next policy, a webhook request): sent with the
// session's token, then its signing page opened; what is wrong with it is shown under it.
async function sendDraft(form, result) {
  const body = {};
  for (const [name, value] of new FormData(form)) body[name] = name in body ? [].concat(body[name], value) : value;
  const done = await post(form.getAttribute("action"), body);
  window.location.assign(done.next);
}

function wire(selector, action) {
  for (const button of document.querySelectorAll(selector)) {
    const result = button.parentElement.querySelector(".result");
    button.addEventListener("click", () => action(button, result).catch((e) => say(result, e.message, false)));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  wire("#login", (_, result) => logIn(result));
  wire("#enrol", register);
  wire(".sign-button", signShown);
  for (const form of document.querySelectorAll("form.draft")) {
    const result = form.querySelector(".result");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sendDraft(form, result).catch((e) => say(result, e.message, false));
    });
  }
});
