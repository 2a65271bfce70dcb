// Lint: typescript-eslint's recommended rules, plus the project's own
// (STYLE.md): no `any`, `import type` for types, no non-null `!` in the core.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'generated/', 'test/core/fixtures/', '.sandbox/', '.tmp-test-*/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  { files: ['core/**/*.ts'], rules: { '@typescript-eslint/no-non-null-assertion': 'error' } },
);
