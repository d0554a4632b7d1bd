import { render } from 'preact';
import 'leaflet/dist/leaflet.css';
import 'uplot/dist/uPlot.min.css';
import './styles/base.css';
import './styles/board.css';
import './styles/views.css';
import './styles/incidents.css';
import { App } from './app';
import { lang } from './i18n';

document.documentElement.lang = lang.get() === 'zh' ? 'zh-CN' : 'en';
render(<App />, document.getElementById('app')!);
