/**
 * HTML mail, made safe to show: sanitize-html with an allow-list (no script,
 * no style, no event handlers, no forms, no frames; links only http(s) and
 * mailto, opened outside the sandbox). Remote images are removed unless the
 * user asked for them for this message; the frame's own CSP blocks them too
 * (two locks: a sanitiser slip still cannot make a request).
 */
import sanitizeHtml from 'sanitize-html';

const TAGS = [
  ...sanitizeHtml.defaults.allowedTags.filter((t) => t !== 'style'),
  'img',
  'font',
  'center',
];

export function sanitizeMail(dirty: string, remoteImages: boolean): { html: string; blockedImages: number } {
  let blockedImages = 0;
  const html = sanitizeHtml(dirty, {
    allowedTags: TAGS,
    allowedAttributes: {
      a: ['href', 'title', 'target', 'rel'],
      img: ['src', 'alt', 'title', 'width', 'height'],
      td: ['colspan', 'rowspan', 'align', 'valign'],
      th: ['colspan', 'rowspan', 'align', 'valign'],
      table: ['summary'],
      '*': ['dir', 'lang'],
    },
    allowedSchemes: ['http', 'https', 'mailto'],
    allowedSchemesByTag: { img: remoteImages ? ['http', 'https', 'data'] : ['data'] },
    allowProtocolRelative: false,
    transformTags: {
      a: (tagName, attribs) => ({ tagName, attribs: { ...attribs, target: '_blank', rel: 'noopener noreferrer' } }),
      img: (tagName, attribs) => {
        const src = attribs.src ?? '';
        if (!remoteImages && src !== '' && !/^data:/i.test(src)) {
          blockedImages++;
          const { src: _src, ...rest } = attribs;
          return { tagName, attribs: rest };
        }
        return { tagName, attribs };
      },
    },
  });
  return { html, blockedImages };
}
