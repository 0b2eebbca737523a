// The TypeScript client of Warden's Intents API (`warden api`), with the Intents API's calls.
//
// Every request and answer type comes from `schema.ts`, which openapi-typescript generates from
// the server's own OpenAPI document (`warden api --openapi`); the calls go through openapi-fetch,
// typed by the same paths. The client trades the agent's API key for a short-lived bearer token
// (POST /v1/auth/agent-token) and renews it before it expires. Every call answers
// `{ data, error, status }`: `data` on success, `error` (with `detail`, and a refusal's `code` and
// `stage`) otherwise; nothing is thrown, not even when the server cannot be reached (`status` 0,
// `error.error` "unreachable").
//
// A signing call carries one Idempotency-Key for all its tries: the caller's `idempotencyKey`, or
// one the client makes before the first try. The client tries again by itself, with that key, when
// no answer came or the server asked to come back (409 in progress, 429, 503), and the answer
// names the key (`idempotencyKey`) so that a caller who retries later passes it back.

import createFetchClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];

// The fields each request must carry: its schema's `required` list in the OpenAPI document. The
// generated types make every field with a default required too (openapi-typescript's
// defaultNonNullable, which types a component's default as always present because an answer always
// has it), though the server fills in what a request leaves out; the request types below keep only
// these required and every other field optional. test/offline.test.mjs checks them against the
// document.
export const requiredFields = {
  TransactionRequest: ["chain", "to", "value"],
  SolanaTransferRequest: ["chain", "to", "value"],
  BitcoinTransferRequest: ["chain", "to", "value"],
  SimulateRequest: ["chain", "to", "value"],
  BundleRequest: ["transactions"],
  TransactionSignRequest: ["chain", "to", "value", "intent_type"],
  PersonalSignRequest: ["intent_type", "chain", "message"],
  TypedDataSignRequest: ["intent_type", "chain", "typed_data"],
  SolanaSignRequest: ["chain", "transaction", "intent_type"],
  SolanaMessageSignRequest: ["intent_type", "chain", "message"],
  AuthorizationRequest: ["chain_id", "address"],
  AccessListEntry: ["address"],
} as const satisfies { [N in keyof Schemas]?: readonly (keyof Schemas[N])[] };

type Named = keyof typeof requiredFields;
type RequiredOf<N extends Named> = Extract<(typeof requiredFields)[N][number], keyof Schemas[N]>;
/** Schema `N` as a request may send it: its required fields, and any of the others. */
type Body<N extends Named> = Pick<Schemas[N], RequiredOf<N>> & Partial<Omit<Schemas[N], RequiredOf<N>>>;

export type TransactionRequest = Body<"TransactionRequest">;
/** A transfer of SOL on a Solana network: `to` a wallet (base58), `value` in SOL. */
export type SolanaTransferRequest = Body<"SolanaTransferRequest">;
/** A payment of BTC on a Bitcoin network: `to` an address of that network, `value` in BTC. */
export type BitcoinTransferRequest = Body<"BitcoinTransferRequest">;
/** What the transactions endpoints take: a transaction on an EVM network, or a transfer on a Solana or a Bitcoin one. */
export type TransferRequest = TransactionRequest | SolanaTransferRequest | BitcoinTransferRequest;
export type SimulateRequest = Body<"SimulateRequest">;
export type BundleRequest = Omit<Body<"BundleRequest">, "transactions"> & { transactions: SimulateRequest[] };
export type AuthorizationRequest = Body<"AuthorizationRequest">;
export type AccessListEntry = Body<"AccessListEntry">;
export type TransactionSignRequest = Omit<Body<"TransactionSignRequest">, "authorization_list" | "access_list"> & {
  access_list?: AccessListEntry[] | null;
  authorization_list?: AuthorizationRequest[] | null;
};
export type SignRequest =
  | TransactionSignRequest
  | Body<"PersonalSignRequest">
  | Body<"TypedDataSignRequest">
  | Body<"SolanaSignRequest">
  | Body<"SolanaMessageSignRequest">;
export type TransactionResponse = Schemas["TransactionResponse"];
export type SolanaTransactionResponse = Schemas["SolanaTransactionResponse"];
export type BitcoinTransactionResponse = Schemas["BitcoinTransactionResponse"];
/** A transaction of any family, in its family's shape: `family` says which ("evm", "solana", "bitcoin"; none on a refusal). */
export type AnyTransaction = Schemas["TransferResponse"];
/** The answer to a transfer request `B`: in the shape of the family of the network its `chain` names. */
export type TransferAnswer<B extends TransferRequest> = B extends { chain: SolanaTransferRequest["chain"] }
  ? SolanaTransactionResponse
  : B extends { chain: BitcoinTransferRequest["chain"] }
    ? BitcoinTransactionResponse
    : TransactionResponse;
export type TransactionList = Schemas["TransactionListResponse"];
export type SignResponse = Schemas["SignResponse"];
export type SimulationResponse = Schemas["SimulationResponse"];
export type SigningKeys = Schemas["SigningKeys"];
export type Chains = Schemas["ChainsResponse"];
export type ApiError = Schemas["ErrorResponse"];
export type { components, paths };

export interface RetryOptions {
  /** tries in all, the first included (default 3) */
  attempts?: number;
  /** the wait before the second try, doubled for each next one, unless the server says (Retry-After); default 500 */
  delayMs?: number;
  /** the longest wait between two tries, a server's Retry-After included (default 10000) */
  maxDelayMs?: number;
}

export interface ClientOptions {
  /** where `warden api` listens, e.g. http://127.0.0.1:8780 */
  baseUrl: string;
  /** the agent's API key, from `warden agents api-key --agent A` */
  apiKey: string;
  /** a fetch of your own (a proxy, a test double); the global one by default */
  fetch?: typeof fetch;
  /** when to try a call again: no answer, 409 (the same key in progress), 429 or 503 */
  retry?: RetryOptions;
}

/** What every call answers: `data` on success, else `error`; `status` 0 when no answer came. */
export type Answer<T> = { data: T; error?: never; status: number } | { data?: never; error: ApiError; status: number };

/** A signing call's answer, with the Idempotency-Key all its tries sent: pass it back to retry later. */
export type KeyedAnswer<T> = Answer<T> & { idempotencyKey: string };

export interface IdempotencyOptions {
  /** the Idempotency-Key header; when left out the client makes one per call and reuses it on each try */
  idempotencyKey?: string;
}

/** The status of an answer that never came. */
export const UNREACHABLE = 0;

// Renew a token this long before the server says it expires.
const RENEW_BEFORE_MS = 30_000;
// Answers that ask to come back: the same key still in progress, too many requests, the pipeline not answering.
const TRY_AGAIN = new Set([409, 429, 503]);

type Sent = { data?: unknown; error?: unknown; response: Response };
type AuthHeaders = Record<string, string>;
type KeyedParams = { path: { agent_id: string }; header: { "Idempotency-Key": string } };
type Tried = Sent | { failure: unknown };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Why a fetch failed, as Node and browsers say it (Node puts the socket's error in `cause`). */
function reason(failure: unknown): string {
  if (!(failure instanceof Error)) return String(failure);
  const cause = failure.cause as { code?: string; message?: string } | undefined;
  const detail = cause?.code ?? cause?.message;
  return detail ? `${failure.message} (${detail})` : failure.message;
}

/** An ApiError of the client's own, for what the server did not say as one. */
function clientError(error: string, detail: string): ApiError {
  return { error, detail, code: null, stage: null, id: null, status: null };
}

export function createClient(options: ClientOptions) {
  const http = createFetchClient<paths>({ baseUrl: options.baseUrl, fetch: options.fetch });
  const tokens = new Map<string, { token: string; expiresAt: number }>();
  const attempts = Math.max(1, options.retry?.attempts ?? 3);
  const delayMs = options.retry?.delayMs ?? 500;
  const maxDelayMs = options.retry?.maxDelayMs ?? 10_000;

  /** ``call`` until it gets an answer that does not ask to come back, or ``attempts`` are spent. */
  async function tried(call: () => Promise<Sent>): Promise<Tried> {
    for (let n = 1; ; n++) {
      let outcome: Tried;
      try {
        outcome = await call();
      } catch (failure) {
        outcome = { failure };
      }
      if (n >= attempts || ("response" in outcome && !TRY_AGAIN.has(outcome.response.status))) return outcome;
      const asked = "response" in outcome ? Number(outcome.response.headers.get("Retry-After")) * 1000 : NaN;
      await sleep(Math.min(maxDelayMs, Number.isFinite(asked) && asked > 0 ? asked : delayMs * 2 ** (n - 1)));
    }
  }

  function answer<T>(outcome: Tried): Answer<T> {
    if (!("response" in outcome)) {
      const detail =
        `no answer from warden api at ${options.baseUrl} after ${attempts} tries: ${reason(outcome.failure)}; ` +
        "check the address (`warden status` lists the api) and that `warden up` or `warden api` runs";
      return { error: clientError("unreachable", detail), status: UNREACHABLE };
    }
    const { data, error, response } = outcome;
    if (error === undefined) return { data: data as T, status: response.status };
    if (typeof error === "object" && error !== null && "detail" in error) {
      return { error: error as ApiError, status: response.status };
    }
    return { error: clientError(`http_${response.status}`, String(error)), status: response.status };
  }

  async function bearer(agentId: string): Promise<{ headers: AuthHeaders } | { refused: Answer<never> }> {
    const held = tokens.get(agentId);
    if (held && held.expiresAt - RENEW_BEFORE_MS > Date.now()) {
      return { headers: { Authorization: `Bearer ${held.token}` } };
    }
    const got = answer<Schemas["TokenResponse"]>(
      await tried(() => http.POST("/v1/auth/agent-token", { body: { agent_id: agentId, api_key: options.apiKey } })),
    );
    if (got.error !== undefined) return { refused: { error: got.error, status: got.status } };
    tokens.set(agentId, { token: got.data.access_token, expiresAt: Date.parse(got.data.expires_at) });
    return { headers: { Authorization: `Bearer ${got.data.access_token}` } };
  }

  async function asAgent<T>(agentId: string, call: (headers: AuthHeaders) => Promise<Sent>): Promise<Answer<T>> {
    const auth = await bearer(agentId);
    if ("refused" in auth) return auth.refused;
    const outcome = await tried(() => call(auth.headers));
    // Revoked or expired early: a new token next time.
    if ("response" in outcome && outcome.response.status === 401) tokens.delete(agentId);
    return answer<T>(outcome);
  }

  /** A signing call: one Idempotency-Key for every try, named in the answer. */
  async function keyed<T>(
    agentId: string,
    given: IdempotencyOptions | undefined,
    call: (params: KeyedParams, headers: AuthHeaders) => Promise<Sent>,
  ): Promise<KeyedAnswer<T>> {
    const idempotencyKey = given?.idempotencyKey ?? crypto.randomUUID();
    const params: KeyedParams = { path: { agent_id: agentId }, header: { "Idempotency-Key": idempotencyKey } };
    const got = await asAgent<T>(agentId, (headers) => call(params, headers));
    return { ...got, idempotencyKey };
  }

  const path = (agentId: string) => ({ path: { agent_id: agentId } });
  const transaction =
    (route: "/v1/agents/{agent_id}/transactions" | "/v1/agents/{agent_id}/transactions/sign") =>
    <B extends TransferRequest>(agentId: string, body: B, given?: IdempotencyOptions) =>
      keyed<TransferAnswer<B>>(agentId, given, (params, headers) =>
        http.POST(route, { params, headers, body: body as Schemas["TransferRequest"] }),
      );

  const agents = {
    /**
     * Sign and broadcast once the agent's policy allows it: 201 signed, 202 parked for an admin. On a
     * Solana or a Bitcoin network `chain`, `to` and `value` make a transfer of SOL or a payment of BTC,
     * answered in that family's shape.
     */
    submitTransaction: transaction("/v1/agents/{agent_id}/transactions"),
    /** Sign without broadcasting (sign-only): `signed_tx` to send through your own RPC. */
    signTransaction: transaction("/v1/agents/{agent_id}/transactions/sign"),
    simulateTransaction: (agentId: string, body: SimulateRequest) =>
      asAgent<SimulationResponse>(agentId, (headers) =>
        http.POST("/v1/agents/{agent_id}/transactions/simulate", {
          params: path(agentId),
          headers,
          body: body as Schemas["SimulateRequest"],
        }),
      ),
    simulateBundle: (agentId: string, body: BundleRequest) =>
      asAgent<SimulationResponse>(agentId, (headers) =>
        http.POST("/v1/agents/{agent_id}/transactions/simulate-bundle", {
          params: path(agentId),
          headers,
          body: body as Schemas["BundleRequest"],
        }),
      ),
    listTransactions: (agentId: string, query?: { include_signed_tx?: boolean }) =>
      asAgent<TransactionList>(agentId, (headers) =>
        http.GET("/v1/agents/{agent_id}/transactions", { params: { ...path(agentId), query }, headers }),
      ),
    /** One transaction of any family, by its id or its hash on chain (a Solana signature, a Bitcoin txid). */
    getTransaction: (agentId: string, txId: string, query?: { include_signed_tx?: boolean }) =>
      asAgent<AnyTransaction>(agentId, (headers) =>
        http.GET("/v1/agents/{agent_id}/transactions/{tx_id}", {
          params: { path: { agent_id: agentId, tx_id: txId }, query },
          headers,
        }),
      ),
    /** personal_sign (EIP-191), typed_data (EIP-712), or a transaction of any type, sign-only. */
    sign: (agentId: string, body: SignRequest, given?: IdempotencyOptions) =>
      keyed<SignResponse>(agentId, given, (params, headers) =>
        http.POST("/v1/agents/{agent_id}/sign", { params, headers, body: body as Schemas["SignRequest"] }),
      ),
  };

  const signingKeys = {
    list: (agentId: string) =>
      asAgent<SigningKeys>(agentId, (headers) =>
        http.GET("/v1/agents/{agent_id}/signing-keys", { params: path(agentId), headers }),
      ),
    /** An admin's act: an agent's key is answered 403 admins_only. */
    create: (agentId: string, _body: { chain: string }) =>
      asAgent<never>(agentId, (headers) =>
        http.POST("/v1/agents/{agent_id}/signing-keys", { params: path(agentId), headers }),
      ),
    rotate: (agentId: string, chain: string) =>
      asAgent<never>(agentId, (headers) =>
        http.POST("/v1/agents/{agent_id}/signing-keys/{chain}/rotate", {
          params: { path: { agent_id: agentId, chain } },
          headers,
        }),
      ),
    deactivate: (agentId: string, chain: string) =>
      asAgent<never>(agentId, (headers) =>
        http.DELETE("/v1/agents/{agent_id}/signing-keys/{chain}", {
          params: { path: { agent_id: agentId, chain } },
          headers,
        }),
      ),
  };

  const chains = {
    list: async (): Promise<Answer<Chains>> => answer<Chains>(await tried(() => http.GET("/v1/chains"))),
  };

  return { agents, signingKeys, chains };
}

export type WardenClient = ReturnType<typeof createClient>;
