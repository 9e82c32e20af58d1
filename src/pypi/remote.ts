/**
 * PyPI's one door to its upstreams: what the rest of pypi/ needs of an
 * upstream answer. The rest of pypi/ never imports upstream/.
 */
export { headerValue } from '../upstream/fetch-document.ts'
