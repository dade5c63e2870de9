/** The token of an `Authorization: Bearer <token>` header (of the first, when it is repeated). */
export function bearerToken(header: string | readonly string[] | undefined): string | undefined {
  const value = typeof header === 'string' ? header : header?.[0];
  return value ? /^Bearer\s+(\S+)\s*$/i.exec(value)?.[1] : undefined;
}
