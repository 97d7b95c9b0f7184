// The `http` section of a dependency: the client's base URL, headers and authentication.
// Secrets belong in `${NAME}` references; no message here ever shows a secret's value.
import { z } from 'zod';
import { doc, duration, renamed } from './fields.ts';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// CR, LF and NUL would split or end a header.
const BAD_VALUE = /[\r\n\0]/;

function httpUrl(what: string) {
  return z
    .string()
    .min(1)
    .superRefine((text, ctx) => {
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        ctx.addIssue({
          code: 'custom',
          message: `expected an absolute http(s) URL, got ${JSON.stringify(text)}`,
        });
        return;
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        ctx.addIssue({
          code: 'custom',
          message: `expected an http: or https: URL, got ${JSON.stringify(url.protocol)}`,
        });
      } else if (url.username !== '' || url.password !== '') {
        // Credentials in a URL end up in logs; they belong in `auth`.
        ctx.addIssue({ code: 'custom', message: `must not contain credentials; use ${what}` });
      }
    });
}

/** A secret: a non-empty string without CR, LF or NUL. */
function secret(description: string) {
  return doc(
    z
      .string()
      .min(1)
      .refine((s) => !BAD_VALUE.test(s), { message: 'must not contain CR, LF or NUL' }),
    `${description} A secret: write \`\${NAME}\` and set it in the environment.`,
  );
}

const auth = z.discriminatedUnion('type', [
  z
    .strictObject({
      type: doc(z.literal('bearer'), 'Sends `Authorization: Bearer <token>`.'),
      token: secret('The token.'),
    })
    .meta({ description: '`bearer`: `Authorization: Bearer <token>`.' }),
  z
    .strictObject({
      type: doc(z.literal('api-key'), 'Sends the key in a header.'),
      header: doc(z.string().regex(HEADER_NAME).optional(), 'The header that carries the key.', 'x-api-key'),
      value: secret('The key.'),
    })
    .meta({ description: '`api-key`: the key in a header of your choice.' }),
  z
    .strictObject({
      type: doc(z.literal('basic'), 'HTTP Basic authentication (RFC 7617).'),
      username: doc(
        z
          .string()
          .min(1)
          .refine((s) => !s.includes(':'), { message: "must not contain ':' (RFC 7617)" }),
        'The user name.',
      ),
      password: secret('The password.'),
    })
    .meta({ description: '`basic`: HTTP Basic authentication.' }),
  renamed(
    {
      type: doc(
        z.literal('oauth2'),
        'OAuth2 client credentials grant; the token is cached until shortly before it expires.',
      ),
      tokenUrl: doc(httpUrl('`clientId` and `clientSecret`'), 'The token endpoint.'),
      clientId: doc(z.string().min(1), 'The client id.'),
      clientSecret: secret('The client secret.'),
      scope: doc(z.string().min(1).optional(), 'The scope requested.'),
      audience: doc(z.string().min(1).optional(), 'The audience requested.'),
      refreshBefore: doc(duration().optional(), 'Refresh the token this long before it expires.', '60s'),
    },
    { refreshBefore: 'refreshBeforeMs' },
  ).meta({ description: '`oauth2`: client credentials grant (RFC 6749 §4.4).' }),
]);

export const httpSchema = renamed(
  {
    baseUrl: doc(
      httpUrl('`auth`').refine(
        (text) => {
          const url = URL.canParse(text) ? new URL(text) : undefined;
          return url === undefined || (url.search === '' && url.hash === '');
        },
        { message: 'must not have a query or fragment' },
      ),
      'Relative URLs given to `fetch` are resolved under it; absolute URLs are used as they are.',
      'none',
    ).optional(),
    headers: doc(
      z
        .record(
          z.string().regex(HEADER_NAME, { message: 'is not a valid header name' }),
          z.string().refine((s) => !BAD_VALUE.test(s), { message: 'must not contain CR, LF or NUL' }),
        )
        .optional(),
      'Headers sent with every request; a header given to `fetch` wins.',
      '{}',
    ),
    auth: doc(
      auth.optional(),
      'How each request is authenticated: `bearer`, `api-key`, `basic` or `oauth2`.',
      'none',
    ),
    connections: doc(
      z.number().int().min(1).optional(),
      'Sockets kept per origin; more requests wait for one.',
      '32',
    ),
    keepAliveTimeout: doc(duration(1).optional(), 'How long an idle socket stays open for reuse.', '4s'),
    connectTimeout: doc(duration(1).optional(), 'Time allowed to open a connection (TCP and TLS).', '10s'),
    maxErrorBodyBytes: doc(
      z.number().int().min(0).optional(),
      "How much of an error response's body `HttpStatusError.body` keeps, in bytes.",
      '4096',
    ),
  },
  { keepAliveTimeout: 'keepAliveTimeoutMs', connectTimeout: 'connectTimeoutMs' },
);
