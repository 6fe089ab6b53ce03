/**
 * GraphiQL outside production: a small page whose code, styles, Monaco workers and icon are
 * static files under `/graphql/assets/`, named by their content hash, cached for a year and sent
 * compressed (brotli or gzip, compressed once per process on first use). The files come from the
 * npm package `@graphql-yoga/render-graphiql` (no CDN); graphql-yoga's own renderer inlines all
 * of them into one 9 MB page (docs/decisions/044-graphiql-static-assets.md).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { GraphiQLOptions } from 'graphql-yoga';

/** Where the assets are served; under `/graphql` so that no console page can shadow them. */
export const GRAPHIQL_ASSETS_PATH = '/graphql/assets/';

const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

interface Asset {
  type: string;
  body: Buffer;
  compressed?: Promise<{ br: Buffer; gzip: Buffer }>;
}

export interface GraphiQLAssets {
  /** The page for `GET /graphql` from a browser, given the options graphql-yoga passes. */
  render(options: GraphiQLOptions | undefined): string;
  /** Serves `/graphql/assets/<name>`; false when no such asset exists. */
  serve(pathname: string, req: IncomingMessage, res: ServerResponse): Promise<boolean>;
}

/** Loads the bundle (about 9 MB of strings) once; call it only where GraphiQL is on. */
export async function loadGraphiQLAssets(): Promise<GraphiQLAssets> {
  const bundle = await import('@graphql-yoga/render-graphiql/graphiql');
  const assets = new Map<string, Asset>();
  const add = (name: string, extension: string, type: string, body: Buffer) => {
    const file = `${name}.${createHash('sha256').update(body).digest('hex').slice(0, 16)}.${extension}`;
    assets.set(file, { type, body });
    return `${GRAPHIQL_ASSETS_PATH}${file}`;
  };
  const javascript = 'text/javascript; charset=utf-8';
  const favicon = /^data:([^;,]+);base64,(.*)$/s.exec(bundle.favicon);
  const urls = {
    css: add('graphiql', 'css', 'text/css; charset=utf-8', Buffer.from(bundle.css)),
    js: add('graphiql', 'js', javascript, Buffer.from(bundle.js)),
    favicon: favicon
      ? add('favicon', 'ico', favicon[1] as string, Buffer.from(favicon[2] as string, 'base64'))
      : bundle.favicon,
    workers: {
      editorWorkerService: add('editor.worker', 'js', javascript, Buffer.from(bundle.editorWorkerService)),
      json: add('json.worker', 'js', javascript, Buffer.from(bundle.jsonWorker)),
      graphql: add('graphql.worker', 'js', javascript, Buffer.from(bundle.graphqlWorker)),
    },
  };
  // Monaco asks for its workers by label; GraphiQL is rendered once the deferred bundle ran.
  // Options travel as JSON in the page, so no inline script is needed.
  const boot = add(
    'boot',
    'js',
    javascript,
    Buffer.from(`(() => {
  const settings = JSON.parse(document.getElementById('graphiql-settings').textContent);
  self.MonacoEnvironment = { globalAPI: false, getWorkerUrl: (_id, label) => settings.workers[label] };
  document.addEventListener('DOMContentLoaded', () => {
    YogaGraphiQL.renderYogaGraphiQL(document.getElementById('root'), settings.options);
  });
})();
`),
  );

  const compressed = (asset: Asset) => {
    asset.compressed ??= Promise.all([
      brotli(asset.body, {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: 9,
          [constants.BROTLI_PARAM_SIZE_HINT]: asset.body.length,
        },
      }),
      gzipAsync(asset.body, { level: 9 }),
    ]).then(([br, gz]) => ({ br, gzip: gz }));
    return asset.compressed;
  };

  return {
    render(options) {
      // The browser asks for every file next: compress them meanwhile (once per process).
      for (const asset of assets.values()) void compressed(asset);
      // `<` escaped so that no string in the options can close the script element.
      const settings = JSON.stringify({ workers: urls.workers, options: options ?? {} }).replace(
        /</g,
        '\\u003c',
      );
      const title = (options?.title ?? 'GraphiQL').replace(/[<>&"]/g, '');
      return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${title}</title>
    <link rel="icon" href="${urls.favicon}" />
    <link rel="stylesheet" href="${urls.css}" />
    <script type="application/json" id="graphiql-settings">${settings}</script>
    <script defer src="${boot}"></script>
    <script defer src="${urls.js}"></script>
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>GraphiQL needs JavaScript.</noscript>
    <div id="root"></div>
  </body>
</html>
`;
    },

    async serve(pathname, req, res) {
      const asset = assets.get(pathname.slice(GRAPHIQL_ASSETS_PATH.length));
      if (!asset || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
      const accepted = String(req.headers['accept-encoding'] ?? '');
      const encoding = /\bbr\b/.test(accepted) ? 'br' : /\bgzip\b/.test(accepted) ? 'gzip' : undefined;
      const body = encoding ? (await compressed(asset))[encoding] : asset.body;
      res.writeHead(200, {
        'Content-Type': asset.type,
        'Content-Length': body.length,
        // The name carries the content's hash: a new bundle is a new URL.
        'Cache-Control': 'public, max-age=31536000, immutable',
        Vary: 'Accept-Encoding',
        ...(encoding ? { 'Content-Encoding': encoding } : {}),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    },
  };
}
