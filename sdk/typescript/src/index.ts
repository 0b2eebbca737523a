// The TypeScript client of Warden's Intents API (`warden api`), with the Intents API's calls.
//
// Every request and answer type comes from `schema.ts`, which openapi-typescript generates from
// the server's own OpenAPI document (`warden api --openapi`); the calls go through openapi-fetch,
// typed by the same paths. The client trades the agent's API key for a short-lived bearer token
// (POST /v1/auth/agent-token) and renews it before it expires. Every call answers
// `{ data, error, status }`: `data` on success, `error` (with `detail`, and a refusal's `code` and
// `stage`) otherwise; nothing is thrown for an answer the API gave.

import createFetchClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
export type TransactionRequest = Schemas["TransactionRequest"];
export type TransactionResponse = Schemas["TransactionResponse"];
export type TransactionList = Schemas["TransactionListResponse"];
export type SignRequest = Schemas["SignRequest"];
export type SignResponse = Schemas["SignResponse"];
export type SimulateRequest = Schemas["SimulateRequest"];
export type BundleRequest = Schemas["BundleRequest"];
export type SimulationResponse = Schemas["SimulationResponse"];
export type SigningKeys = Schemas["SigningKeys"];
export type Chains = Schemas["ChainsResponse"];
export type ApiError = Schemas["ErrorResponse"];
export type { components, paths };

export interface ClientOptions {
  /** where `warden api` listens, e.g. http://127.0.0.1:8780 */
  baseUrl: string;
  /** the agent's API key, from `warden agents api-key --agent A` */
  apiKey: string;
  /** a fetch of your own (a proxy, a test double); the global one by default */
  fetch?: typeof fetch;
}

export interface Answer<T> {
  data?: T;
  error?: ApiError;
  status: number;
}

export interface IdempotencyOptions {
  /** the Idempotency-Key header; a new UUID per call when left out, so a retry of the same call is safe */
  idempotencyKey?: string;
}

// Renew a token this long before the server says it expires.
const RENEW_BEFORE_MS = 30_000;

export function createClient(options: ClientOptions) {
  const http = createFetchClient<paths>({ baseUrl: options.baseUrl, fetch: options.fetch });
  const tokens = new Map<string, { token: string; expiresAt: number }>();

  async function bearer(agentId: string): Promise<{ headers?: Record<string, string>; error?: Answer<never> }> {
    const held = tokens.get(agentId);
    if (held && held.expiresAt - RENEW_BEFORE_MS > Date.now()) {
      return { headers: { Authorization: `Bearer ${held.token}` } };
    }
    const { data, error, response } = await http.POST("/v1/auth/agent-token", {
      body: { agent_id: agentId, api_key: options.apiKey },
    });
    if (!data) {
      return { error: { error: error as ApiError, status: response.status } };
    }
    tokens.set(agentId, { token: data.access_token, expiresAt: Date.parse(data.expires_at) });
    return { headers: { Authorization: `Bearer ${data.access_token}` } };
  }

  async function asAgent<T>(
    agentId: string,
    call: (headers: Record<string, string>) => Promise<{ data?: unknown; error?: unknown; response: Response }>,
  ): Promise<Answer<T>> {
    const auth = await bearer(agentId);
    if (auth.error) return auth.error;
    const { data, error, response } = await call(auth.headers!);
    if (response.status === 401) tokens.delete(agentId); // revoked or expired early: a new one next time
    return error === undefined
      ? { data: data as T, status: response.status }
      : { error: error as ApiError, status: response.status };
  }

  const path = (agentId: string) => ({ path: { agent_id: agentId } });
  // One key per call, made before the first try: every retry of this call sends the same one.
  const keyed = (agentId: string, given?: IdempotencyOptions) => ({
    ...path(agentId),
    header: { "Idempotency-Key": given?.idempotencyKey ?? crypto.randomUUID() },
  });

  const agents = {
    /** Sign and broadcast once the agent's policy allows it: 201 signed, 202 parked for an admin. */
    submitTransaction: (agentId: string, body: TransactionRequest, given?: IdempotencyOptions) => {
      const params = keyed(agentId, given);
      return asAgent<TransactionResponse>(agentId, (headers) =>
        http.POST("/v1/agents/{agent_id}/transactions", { params, headers, body }),
      );
    },
    /** Sign without broadcasting (sign-only): `signed_tx` to send through your own RPC. */
    signTransaction: (agentId: string, body: TransactionRequest, given?: IdempotencyOptions) => {
      const params = keyed(agentId, given);
      return asAgent<TransactionResponse>(agentId, (headers) =>
        http.POST("/v1/agents/{agent_id}/transactions/sign", { params, headers, body }),
      );
    },
    simulateTransaction: (agentId: string, body: SimulateRequest) =>
      asAgent<SimulationResponse>(agentId, (headers) =>
        http.POST("/v1/agents/{agent_id}/transactions/simulate", { params: path(agentId), headers, body }),
      ),
    simulateBundle: (agentId: string, body: BundleRequest) =>
      asAgent<SimulationResponse>(agentId, (headers) =>
        http.POST("/v1/agents/{agent_id}/transactions/simulate-bundle", { params: path(agentId), headers, body }),
      ),
    listTransactions: (agentId: string, query?: { include_signed_tx?: boolean }) =>
      asAgent<TransactionList>(agentId, (headers) =>
        http.GET("/v1/agents/{agent_id}/transactions", { params: { ...path(agentId), query }, headers }),
      ),
    getTransaction: (agentId: string, txId: string, query?: { include_signed_tx?: boolean }) =>
      asAgent<TransactionResponse>(agentId, (headers) =>
        http.GET("/v1/agents/{agent_id}/transactions/{tx_id}", {
          params: { path: { agent_id: agentId, tx_id: txId }, query },
          headers,
        }),
      ),
    /** personal_sign (EIP-191), typed_data (EIP-712), or a transaction of any type, sign-only. */
    sign: (agentId: string, body: SignRequest, given?: IdempotencyOptions) => {
      const params = keyed(agentId, given);
      return asAgent<SignResponse>(agentId, (headers) =>
        http.POST("/v1/agents/{agent_id}/sign", { params, headers, body }),
      );
    },
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
    list: async (): Promise<Answer<Chains>> => {
      const { data, response } = await http.GET("/v1/chains");
      return { data, status: response.status };
    },
  };

  return { agents, signingKeys, chains };
}

export type WardenClient = ReturnType<typeof createClient>;
