import { describe, expect, it } from 'vitest';
import { errorMessage, isApiError } from '../src/api';
import { parseMerged } from '../src/conflicts';
import { DEFAULT_SERVER, normalizeServer } from '../src/signin';

describe('normalizeServer', () => {
  it('trims and drops trailing slashes', () => {
    expect(normalizeServer('  http://127.0.0.1:8080/fhir/ ')).toBe('http://127.0.0.1:8080/fhir');
    expect(normalizeServer(DEFAULT_SERVER)).toBe(DEFAULT_SERVER);
  });
  it('rejects empty, malformed and non-http addresses', () => {
    expect(() => normalizeServer('')).toThrow(/Enter the server/);
    expect(() => normalizeServer('127.0.0.1:8080')).toThrow();
    expect(() => normalizeServer('not a url')).toThrow(/not a valid address/);
    expect(() => normalizeServer('ftp://example.org/fhir')).toThrow(/http/);
  });
});

describe('parseMerged', () => {
  it('accepts a JSON object', () => {
    expect(parseMerged('{"resourceType":"Patient","id":"p1"}')).toEqual({ resourceType: 'Patient', id: 'p1' });
  });
  it('rejects invalid JSON and non-objects', () => {
    expect(() => parseMerged('{')).toThrow(/not valid JSON/);
    expect(() => parseMerged('[1]')).toThrow(/JSON object/);
    expect(() => parseMerged('null')).toThrow(/JSON object/);
  });
});

describe('errors from the shell', () => {
  it('recognises {code, message} and prefers the message', () => {
    const e = { code: 'ConsentRequired', message: 'The patient has not granted consent.' };
    expect(isApiError(e)).toBe(true);
    expect(errorMessage(e)).toBe('The patient has not granted consent.');
    expect(errorMessage({ code: 'Offline', message: '' })).toBe('Offline');
  });
  it('handles plain errors and strings', () => {
    expect(isApiError(new Error('x'))).toBe(false);
    expect(errorMessage(new Error('boom'))).toBe('boom');
    expect(errorMessage('command sign_in not found')).toBe('command sign_in not found');
    expect(errorMessage(42)).toBe('Unexpected error');
  });
});
