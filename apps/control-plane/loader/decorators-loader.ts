import { readFileSync } from 'node:fs';
import { registerHooks, setSourceMapsSupport } from 'node:module';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'oxc-transform';

/**
 * Node runs this repository's TypeScript by stripping types, which cannot express NestJS's
 * legacy decorators or the design-time type metadata Nest's dependency injection and
 * @nestjs/graphql read. So the control plane's own sources (and only those: libs keep plain type
 * stripping) are compiled on load by oxc — the same transformer, with the same tsconfig options
 * (experimentalDecorators + emitDecoratorMetadata), that vitest uses for the tests. In-process,
 * synchronous hooks (module.registerHooks, Node >= 22.15); inline source maps keep stack traces
 * on the original lines. docs/control-plane.md, "Running TypeScript with decorators".
 */
const APP_ROOT = fileURLToPath(new URL('../', import.meta.url));

registerHooks({
  load(url, context, nextLoad) {
    if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
    const path = fileURLToPath(url);
    if (!path.startsWith(APP_ROOT) || path.includes('/node_modules/')) return nextLoad(url, context);
    const result = transformSync(path, readFileSync(path, 'utf8'), {
      lang: 'ts',
      sourceType: 'module',
      target: 'es2024',
      sourcemap: true,
      decorator: { legacy: true, emitDecoratorMetadata: true },
      typescript: { onlyRemoveTypeImports: true },
    });
    if (result.errors.length > 0) throw new Error(`cannot compile ${path}: ${result.errors.map((e) => e.message).join('; ')}`);
    const map = result.map == null ? '' : `\n//# sourceMappingURL=data:application/json;base64,${Buffer.from(JSON.stringify(result.map)).toString('base64')}`;
    return { format: 'module', source: result.code + map, shortCircuit: true };
  },
});
setSourceMapsSupport(true);
