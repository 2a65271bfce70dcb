/**
 * The ConfigMaps of a namespace on a cluster's API server (`…/configmaps`), one of them
 * (`…/configmaps/NAME`), with an optional query. The server URL may carry a path prefix.
 */
export function configMapUrl(serverUrl: string, namespace: string, name?: string, query?: string): URL {
  const base = serverUrl.endsWith('/') ? serverUrl : `${serverUrl}/`;
  const one = name === undefined ? '' : `/${encodeURIComponent(name)}`;
  return new URL(`api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps${one}${query ? `?${query}` : ''}`, base);
}
