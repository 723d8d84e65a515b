import type { HttpExchange } from './http-exchange.ts';

/**
 * A minimal router: method + path template (`/v1/stores/:storeId/keys`) → handler. The template
 * is what metrics and logs show, so label values stay a small fixed set.
 */
export type RouteHandler = (exchange: HttpExchange) => Promise<void>;

interface Route {
  method: string;
  template: string;
  pattern: RegExp;
  paramNames: string[];
  handle: RouteHandler;
}

export type RouteMatch =
  | { found: true; template: string; params: Record<string, string>; handle: RouteHandler }
  | { found: false; allowed: string[] };

export class Router {
  private readonly routes: Route[] = [];

  add(method: string, template: string, handle: RouteHandler): this {
    const paramNames: string[] = [];
    const source = template
      .split('/')
      .map((part) => {
        if (!part.startsWith(':')) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        paramNames.push(part.slice(1));
        return '([^/]+)';
      })
      .join('/');
    this.routes.push({ method, template: `${method} ${template}`, pattern: new RegExp(`^${source}$`), paramNames, handle });
    return this;
  }

  match(method: string, path: string): RouteMatch {
    const allowed: string[] = [];
    for (const route of this.routes) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) {
        allowed.push(route.method);
        continue;
      }
      const params: Record<string, string> = {};
      route.paramNames.forEach((name, i) => (params[name] = safeDecode(m[i + 1]!)));
      return { found: true, template: route.template, params, handle: route.handle };
    }
    return { found: false, allowed };
  }
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part; // malformed %-escape: left as is, the route's validation refuses it
  }
}
