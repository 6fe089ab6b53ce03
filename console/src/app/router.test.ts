import { describe, expect, it } from 'vitest';
import { matchPath } from './router';

describe('matchPath', () => {
  it('matches literal segments and captures parameters', () => {
    expect(matchPath('/clinics', '/clinics')).toEqual({});
    expect(matchPath('/clinics', '/clinics/')).toEqual({});
    expect(matchPath('/clinics/:id', '/clinics/abc%20d')).toEqual({ id: 'abc d' });
    expect(matchPath('/clinics/:id', '/clinics')).toBeNull();
    expect(matchPath('/clinics/:id', '/audit/1')).toBeNull();
  });
});
