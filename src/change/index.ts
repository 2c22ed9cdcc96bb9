export * from './ticket';
export * from './change-state';
export * from './closure';
export * from './selection';
export * from './exception';
