// ESLint flat config for the Arca monorepo (ESLint 10, typescript-eslint 8, Nx 23).
//
//   npx eslint .                 lint everything (also `npm run lint`)
//   npx eslint libs/engine       lint one package
//
// Workspace boundaries are enforced by @nx/enforce-module-boundaries, which reads the Nx project
// graph built from the npm workspaces in package.json (projects and their "nx.tags" come from each
// package.json; see nx.json). Tags in use:
//   type:app | type:lib
//   scope:agent | scope:control-plane | scope:key-proxy | scope:dashboard   (apps)
//   scope:data-plane (libs/engine) | scope:shared (libs/crypto, libs/contracts)
// A project with no type:/scope: tag cannot depend on any workspace project: tag new packages.
import { defineConfig, globalIgnores } from 'eslint/config';
import { builtinRules } from 'eslint/use-at-your-own-risk';
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';
import { createProjectGraphAsync } from 'nx/src/devkit-exports.js';

// @nx/enforce-module-boundaries only *reads* the cached graph in .nx/workspace-data; with no cache
// (fresh clone, CI, after `nx reset`) it prints "No cached ProjectGraph is available. The rule will
// be skipped." and lets every boundary violation through, and with a stale cache it checks against
// old tags. So (re)build the graph here, in-process (nx.json: useDaemonProcess=false), before any
// rule runs. Costs ~1-2 s; a broken nx.json/package.json makes lint fail loudly instead of passing.
await createProjectGraphAsync({ exitOnError: false });

const TS_FILES = ['**/*.ts', '**/*.mts', '**/*.cts', '**/*.tsx'];
const JS_FILES = ['**/*.js', '**/*.mjs', '**/*.cjs'];

// `eslint:recommended` without adding @eslint/js as a dependency: @eslint/js's recommended set is
// by definition the core rules whose meta.docs.recommended is true, and those ship inside eslint.
const eslintRecommended = {
  name: 'arca/eslint-recommended',
  rules: Object.fromEntries(
    [...builtinRules]
      .filter(([, rule]) => rule.meta?.docs?.recommended && !rule.meta?.deprecated)
      .map(([name]) => [name, 'error']),
  ),
};

const NEST_BAN = {
  group: ['@nestjs', '@nestjs/*'],
  message: 'Libraries must not depend on NestJS: keep Nest in apps (control-plane) and pass plain objects into libs.',
};

export default defineConfig([
  globalIgnores(['**/node_modules/', '**/dist/', '**/.nx/', '**/coverage/', '**/.arca-demo/']),

  eslintRecommended,
  ...nx.configs['flat/base'], // registers the `@nx` plugin
  tseslint.configs.recommended, // parser + eslint-recommended overrides for TS + recommended rules

  {
    name: 'arca/all',
    files: [...TS_FILES, ...JS_FILES],
    languageOptions: {
      ecmaVersion: 'latest',
      sourceType: 'module',
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      // `== null` (null or undefined) is an intentional idiom; every other loose comparison is a bug.
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-self-compare': 'error',
      'no-template-curly-in-string': 'error',
      'no-constructor-return': 'error',

      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'after-used',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrors: 'all',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],

      // Deliberately off: the tsconfig has noUncheckedIndexedAccess, so `buf[i]!` / `arr[j]!` after
      // an explicit bounds check is the intended way to read typed arrays in hot loops (chunker,
      // pack and index codecs). Flagging every `!` would be noise, not bugs. (It is not in
      // typescript-eslint's `recommended`; the Nx preset used to warn on it — stated here on purpose.)
      '@typescript-eslint/no-non-null-assertion': 'off',

      // Workspace boundaries: apps depend on libs, never the reverse; libs only on libs; scopes below.
      // Every constraint whose sourceTag a project carries must hold (type AND scope).
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false, // libs are consumed as source (type stripping), not built
          allowCircularSelfDependency: false,
          banTransitiveDependencies: false,
          checkDynamicDependenciesExceptions: [],
          allow: [],
          depConstraints: [
            // --- type ---
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
            {
              sourceTag: 'type:lib',
              onlyDependOnLibsWithTags: ['type:lib'],
              // Takes effect once @nestjs/* is in package-lock.json (the rule only knows installed
              // packages); `no-restricted-imports` on libs/** below covers it until then.
              bannedExternalImports: ['@nestjs/*'],
            },
            // --- scope ---
            { sourceTag: 'scope:shared', onlyDependOnLibsWithTags: ['scope:shared'] },
            { sourceTag: 'scope:data-plane', onlyDependOnLibsWithTags: ['scope:shared'] },
            { sourceTag: 'scope:agent', onlyDependOnLibsWithTags: ['scope:shared', 'scope:data-plane'] },
            // Future apps. The control plane never holds data keys, so it gets no data-plane libs;
            // its own libs (e.g. libs/db) are tagged scope:control-plane.
            { sourceTag: 'scope:control-plane', onlyDependOnLibsWithTags: ['scope:shared', 'scope:control-plane'] },
            { sourceTag: 'scope:key-proxy', onlyDependOnLibsWithTags: ['scope:shared', 'scope:key-proxy'] },
            { sourceTag: 'scope:dashboard', onlyDependOnLibsWithTags: ['scope:shared', 'scope:dashboard'] },
          ],
        },
      ],
    },
  },

  {
    name: 'arca/typescript',
    files: TS_FILES,
    languageOptions: {
      // Type information for the two promise rules below. projectService picks the nearest
      // tsconfig.json (the root one today; a future app with its own tsconfig.json gets that).
      // Cost measured at ~+4 s on 2 cores for the current tree, so it stays on.
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A dropped promise in a backup tool is an unhandled rejection (process crash) or a write
      // that is never awaited. `void promise` marks a deliberate fire-and-forget.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: true }],
      '@typescript-eslint/no-misused-promises': 'error',
      // verbatimModuleSyntax only rejects pure types imported without `type`; this also catches
      // values (enums, classes) used only as types, so type stripping erases the whole import.
      // no-import-type-side-effects: `import { type A } from './a.ts'` still loads ./a.ts at runtime.
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { prefer: 'type-imports', fixStyle: 'inline-type-imports', disallowTypeAnnotations: true },
      ],
      '@typescript-eslint/no-import-type-side-effects': 'error',
    },
  },

  {
    name: 'arca/libs-no-nest',
    files: ['libs/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [NEST_BAN] }],
    },
  },
]);
